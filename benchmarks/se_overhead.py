"""SE overhead on the 3D U-Net: training-step time and peak RSS of each SE kind relative to se=none.

Run by hand (results go to docs/benchmarks.md):

    .venv/bin/python benchmarks/se_overhead.py --repeats 5

Each variant runs in its own subprocess so that peak RSS (ru_maxrss) belongs to that variant alone;
variants are interleaved over rounds so machine drift hits all of them alike. ``scse-plain`` swaps
the fused gate combination for the plain autograd formula, to show what the fused one saves.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("none", "cse", "sse", "scse", "scse-plain", "pe")


def run_variant(variant: str, size: int, steps: int, threads: int) -> dict[str, float]:
    import torch

    import scseg.nn.blocks.channel_spatial_se as scse_module
    from scseg.nn import create_model
    from scseg.nn.blocks.gating import combine_gates

    torch.set_num_threads(threads)
    kind = variant
    if variant == "scse-plain":
        scse_module.fused_gate_combination = combine_gates  # the naive formulation, for comparison
        kind = "scse"
    torch.manual_seed(0)
    model = create_model("unet", 3, 1, 3, se=kind, features=(16, 32, 64, 128, 256), norm="instance")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(2, 1, size, size, size)
    y = torch.randint(0, 3, (2, size, size, size))
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up allocator and kernels
            times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    saved_mib = saved_for_backward_mib(model, x)  # after the peak was read: it runs one more forward
    return {"step_s": statistics.median(times), "peak_mib": peak_mib, "saved_mib": saved_mib}


def saved_for_backward_mib(model, x) -> float:
    """MiB of distinct tensor storage autograd keeps for backward after one forward (deterministic)."""
    import torch

    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64, help="cubic input size (anchors: 64)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per subprocess")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all variants")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.size, args.steps, args.threads)))
        return
    variants = args.variants.split(",")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for round_ in range(args.repeats):
        for v in variants:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                v,
                "--size",
                str(args.size),
                "--steps",
                str(args.steps),
            ]
            cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[v].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {round_ + 1}/{args.repeats} {v}: {results[v][-1]}", file=sys.stderr)
    base_t = statistics.median(r["step_s"] for r in results["none"])
    base_m = statistics.median(r["peak_mib"] for r in results["none"])
    base_s = results["none"][0]["saved_mib"]
    print("| se | step time (s) | vs none | peak RSS (MiB) | vs none | saved for backward (MiB) | vs none |")
    print("|---|---|---|---|---|---|---|")
    for v in variants:
        t = statistics.median(r["step_s"] for r in results[v])
        m = statistics.median(r["peak_mib"] for r in results[v])
        sv = results[v][0]["saved_mib"]
        print(
            f"| {v} | {t:.3f} | {t / base_t:.2f}x | {m:.0f} | {m / base_m:.2f}x | {sv:.0f} | {sv / base_s:.2f}x |"
        )


if __name__ == "__main__":
    main()
