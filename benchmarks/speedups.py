"""Optional speed-ups for the 3D scSE U-Net on this machine: inference_mode, channels_last_3d,
bf16 autocast and torch.compile, for inference (one sliding-window batch) and a training step.

Run by hand (results go to docs/benchmarks.md):

    .venv/bin/python benchmarks/speedups.py --repeats 5

All variants run in one process, interleaved per round, and each reports the median step time
after its warm-up (torch.compile's compilation time is reported separately). Outputs are
compared with the eager float32 result so that a variant that is fast but wrong shows up.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from scseg.nn import create_model


def _model(channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("unet", 3, 1, 3, se="scse", features=(16, 32, 64, 128, 256), norm="instance")
    return model.to(memory_format=torch.channels_last_3d) if channels_last else model


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def variants() -> dict[str, dict]:
    return {
        "eager, no_grad": {},
        "inference_mode": {"inference_mode": True},
        "channels_last_3d": {"channels_last": True},
        "bf16 autocast": {"bf16": True},
        "torch.compile": {"compile": True},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, 1, *([args.size] * 3))
    y = torch.randint(0, 3, (args.batch, *([args.size] * 3)))
    reference = _model(False).eval()
    with torch.no_grad():
        expected = reference(x)
    setups = {}
    for name, opt in variants().items():
        model = _model(opt.get("channels_last", False))
        runner = torch.compile(model) if opt.get("compile") else model  # compiles on its first call
        inp = x.to(memory_format=torch.channels_last_3d) if opt.get("channels_last") else x
        setups[name] = (model, runner, inp, opt)
    infer_t: dict[str, list[float]] = {n: [] for n in setups}
    train_t: dict[str, list[float]] = {n: [] for n in setups}
    errors: dict[str, float] = {}
    compile_s: dict[str, float] = {}
    for round_ in range(args.repeats + 1):  # round 0 warms up (and compiles)
        for name, (model, runner, inp, opt) in setups.items():
            model.eval()
            grad = torch.inference_mode() if opt.get("inference_mode") else torch.no_grad()
            start = time.perf_counter()
            with grad, _autocast(opt.get("bf16", False)):
                out = runner(inp)
            elapsed = time.perf_counter() - start
            if round_ == 0:
                errors[name] = float((out.float() - expected).abs().max())
                compile_s[name] = elapsed
            else:
                infer_t[name].append(elapsed)
            if opt.get("inference_mode"):
                continue  # inference_mode has no training step
            model.train()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: weights stay comparable
            start = time.perf_counter()
            with _autocast(opt.get("bf16", False)):
                loss = torch.nn.functional.cross_entropy(runner(inp).float(), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if round_:
                train_t[name].append(time.perf_counter() - start)
        print(f"round {round_}/{args.repeats} done", flush=True)
    base_i = statistics.median(infer_t["eager, no_grad"])
    base_t = statistics.median(train_t["eager, no_grad"])
    print(
        f"\n3D scSE U-Net, {args.batch} x {args.size}^3, {args.threads} threads, median of {args.repeats}\n"
    )
    print(
        "| variant | inference (s) | vs eager | training step (s) | vs eager | max abs diff of logits | first call (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in setups:
        ti = statistics.median(infer_t[name])
        tt = statistics.median(train_t[name]) if train_t[name] else float("nan")
        train_cells = f"{tt:.3f} | {tt / base_t:.2f}x" if train_t[name] else "- | -"
        print(
            f"| {name} | {ti:.3f} | {ti / base_i:.2f}x | {train_cells} | {errors[name]:.2e} | {compile_s[name]:.1f} |"
        )


if __name__ == "__main__":
    main()
