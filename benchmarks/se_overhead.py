"""SE overhead per architecture, 2D and 3D: parameters, training-step time and peak RSS of each SE
kind relative to se=none.

Run by hand (results go to docs/benchmarks.md):

    .venv/bin/python benchmarks/se_overhead.py --repeats 5                       # 3D U-Net (the target)
    .venv/bin/python benchmarks/se_overhead.py --archs unet,sdnet,densenet --dims 2,3 --repeats 3

A variant is an SE kind, optionally with SE options after a colon (the design space of SE-Nets):
``cse:squeeze=max``, ``cse:gate=tanh``, ``scse:squeeze=avgmax``, and on ``--archs resunet``
``cse:integration=pre`` (any of standard, pre, post, identity, 3x3)::

    .venv/bin/python benchmarks/se_overhead.py --archs unet --dims 2 --size-2d 160 \
        --variants none,cse,cse:squeeze=max,cse:squeeze=avgmax,cse:gate=tanh,cse:gate=relu,scse,scse:squeeze=max
    .venv/bin/python benchmarks/se_overhead.py --archs resunet --dims 2 --size-2d 160 \
        --variants none,cse,cse:integration=pre,cse:integration=post,cse:integration=identity,cse:integration=3x3

``--study`` times the whole-brain study's training step instead (2D, 16 coronal slices of 72 x 80,
99 classes, batch norm; an architecture as ``ARCH:N`` at ``features=N``, e.g. ``sdnet:32``), with
``--compile`` as ``train.compile`` does, and adds the column the study's equal-wall-clock cells
need: how many epochs a variant trains in the time ``none`` trains 900 (meaningful only on a quiet
machine with many rounds: on a shared 2-core VM a few seconds of steps swung by 30 %, more than
scSE's cost; docs/benchmarks.md)::

    .venv/bin/python benchmarks/se_overhead.py --study --compile --archs unet,resunet,sdnet:32,densenet:32 \
        --variants none,scse --repeats 8 --steps 20

Each variant runs in its own subprocess so that peak RSS (ru_maxrss) belongs to that variant alone;
variants are interleaved over rounds so machine drift hits all of them alike. ``scse-eager`` runs the
gate combination with the eager in-place kernels instead of the compiled (inductor) ones, and
``scse-plain`` with the plain autograd formula, to show what each saves. The first (untimed) step
includes compiling the fused kernels. Children inherit the environment: prefix the command with
``LD_PRELOAD=.../libtcmalloc_minimal.so.4`` to measure under tcmalloc, ``SCSEG_FUSED_SE=eager`` to
measure without the compiled kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("none", "cse", "sse", "scse", "scse-eager", "scse-plain", "pe")
STUDY_BATCH, STUDY_SLICE, STUDY_CLASSES, STUDY_EPOCHS = 16, (72, 80), 99, 900  # configs/whole_brain_2d.yaml


def run_variant(
    variant: str,
    size: int,
    steps: int,
    threads: int,
    arch: str = "unet",
    dims: int = 3,
    study: bool = False,
    compile_: bool = False,
) -> dict[str, float]:
    import torch

    import scseg.nn.blocks.channel_spatial_se as scse_module
    from scseg.nn import create_model
    from scseg.nn.blocks import gate_kernels
    from scseg.nn.blocks.gating import combine_gates

    torch.set_num_threads(threads)
    kind, _, option_text = variant.partition(":")
    options = {f"se_{k}": v for k, v in (item.split("=", 1) for item in option_text.split(",") if item)}
    if variant == "scse-plain":
        scse_module.fused_gate_combination = combine_gates  # the naive formulation, for comparison
        kind = "scse"
    if variant == "scse-eager":
        os.environ[gate_kernels.ENV] = "eager"  # the eager in-place kernels instead of the compiled ones
        kind = "scse"
    torch.manual_seed(0)
    arch, _, width = arch.partition(":")
    # the U-Net at the widths of the anchors (and of the study's config); the others at their
    # defaults, or at features=N
    widths = {"features": (16, 32, 64, 128, 256)} if arch == "unet" else {}
    widths = {"features": int(width)} if width else widths
    classes, norm = (STUDY_CLASSES, "batch") if study else (3, "instance")
    model = create_model(arch, dims, 1, classes, se=kind, norm=norm, **widths, **options)
    net = torch.compile(model) if compile_ else model  # as train.compile: the training forward
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    batch = 2 if dims == 3 else 8
    shape = [size] * dims
    if study:
        batch, shape = STUDY_BATCH, list(STUDY_SLICE)
    x = torch.randn(batch, 1, *shape)
    y = torch.randint(0, classes, (batch, *shape))
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up allocator and kernels
            times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    saved_mib = saved_for_backward_mib(model, x)  # after the peak was read: it runs one more forward
    params = sum(p.numel() for p in model.parameters())
    return {
        "step_s": statistics.median(times),
        "peak_mib": peak_mib,
        "saved_mib": saved_mib,
        "params": params,
    }


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


def _table(results: dict[str, list[dict[str, float]]], variants: list[str], study: bool = False) -> list[str]:
    """Markdown rows of each variant against ``none``; with ``study``, also the epochs a variant
    trains in the time ``none`` trains the study's budget (the equal-wall-clock cells' N)."""
    base = results["none"]
    base_t = statistics.median(r["step_s"] for r in base)
    base_m = statistics.median(r["peak_mib"] for r in base)
    base_s, base_p = base[0]["saved_mib"], base[0]["params"]
    extra = f" epochs in none's {STUDY_EPOCHS} |" if study else ""
    lines = [
        "| se | parameters | vs none | step time (s) | vs none | peak RSS (MiB) | vs none "
        "| saved for backward (MiB) | vs none |" + extra,
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if study else ""),
    ]
    for v in variants:
        t = statistics.median(r["step_s"] for r in results[v])
        m = statistics.median(r["peak_mib"] for r in results[v])
        sv, n = results[v][0]["saved_mib"], results[v][0]["params"]
        lines.append(
            f"| {v} | {n:,.0f} | {100 * (n / base_p - 1):+.2f} % | {t:.3f} | {t / base_t:.2f}x | {m:.0f} "
            f"| {m / base_m:.2f}x | {sv:.0f} | {sv / base_s:.2f}x |"
            + (f" {round(STUDY_EPOCHS * base_t / t)} |" if study else "")
        )
    return lines


def split_variants(text: str) -> list[str]:
    """``none,cse:squeeze=max,gate=tanh,scse`` -> ``none``, ``cse:squeeze=max,gate=tanh``, ``scse``."""
    variants: list[str] = []
    for item in text.split(","):
        if "=" in item and ":" not in item and variants:
            variants[-1] += "," + item  # a second option of the variant before
        else:
            variants.append(item)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64, help="cubic input size (anchors: 64)")
    parser.add_argument("--size-2d", type=int, default=192, help="square input size of the 2D models")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per subprocess")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all variants")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="kinds, or kind:option=value (see above)"
    )
    parser.add_argument("--archs", default="unet", help="comma-separated: unet,sdnet,densenet,resunet")
    parser.add_argument("--dims", default="3", help="2, 3 or 2,3")
    parser.add_argument("--study", action="store_true", help="the whole-brain study's 2D step (see above)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model, as train.compile")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--arch", default="unet", help=argparse.SUPPRESS)
    parser.add_argument("--child-dims", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size = args.size if args.child_dims == 3 else args.size_2d
        result = run_variant(
            args.child, size, args.steps, args.threads, args.arch, args.child_dims, args.study, args.compile
        )
        print(json.dumps(result))
        return
    for arch in args.archs.split(","):
        for dims in [2] if args.study else [int(d) for d in args.dims.split(",")]:  # the study is 2D
            # Project & Excite is 3D only; the plain-formula variant only matters for the U-Net
            variants = [v for v in split_variants(args.variants) if not (v == "pe" and dims == 2)]
            results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for round_ in range(args.repeats):
                for v in variants:
                    cmd = [sys.executable, __file__, "--child", v, "--arch", arch, "--child-dims", str(dims),
                           "--size", str(args.size), "--size-2d", str(args.size_2d),
                           "--steps", str(args.steps), "--threads", str(args.threads)]  # fmt: skip
                    cmd += ["--study"] * args.study + ["--compile"] * args.compile
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    results[v].append(json.loads(out.strip().splitlines()[-1]))
                    print(
                        f"{arch} {dims}D round {round_ + 1}/{args.repeats} {v}: {results[v][-1]}",
                        file=sys.stderr,
                    )
            size = f"{args.size}^3, batch 2" if dims == 3 else f"{args.size_2d}^2, batch 8"
            if args.study:
                size = f"the study's step: {STUDY_BATCH} slices of {STUDY_SLICE}, {STUDY_CLASSES} classes"
            compiled = ", compiled" if args.compile else ""
            print(f"\n{arch} {dims}D ({size}{compiled}, {args.threads} threads):\n")
            print("\n".join(_table(results, variants, args.study)), flush=True)


if __name__ == "__main__":
    main()
