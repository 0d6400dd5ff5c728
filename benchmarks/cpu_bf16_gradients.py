"""Are bfloat16 convolution weight gradients on this CPU right? The check behind ``train.cpu_amp``.

Each row backpropagates one convolution (a 3x3 kernel, padding 1, batch 4) under CPU bfloat16
autocast, several times over the same input, and compares the weight gradient with float32's: a
correct bf16 gradient is within ~0.5 % of it and the same on every repeat. On torch 2.13 (oneDNN)
here, 3D convolutions on 2x2x2 maps fail: the gradient is off by up to 1e13 and differs run to run,
so ``train.cpu_amp`` is refused for 3D configs. Re-run this on a new torch build before lifting that.

``--steps`` also times a training step (forward and backward, eager) of the four 2D study
architectures at the whole-brain study's batch (16 coronal slices of 72 x 80, 99 classes), float32
against bf16 autocast: what ``train.cpu_amp`` buys. ``--step-archs`` picks the rows, ``ARCH:N`` at
``features=N`` (e.g. ``sdnet:32``); ``--float32-only`` skips bf16 where it is emulated (slow).

Run by hand (results go to docs/benchmarks.md)::

    .venv/bin/python benchmarks/cpu_bf16_gradients.py             # exit status 1 when a 2D row fails
    .venv/bin/python benchmarks/cpu_bf16_gradients.py --steps --repeats 5
    .venv/bin/python benchmarks/cpu_bf16_gradients.py --steps --float32-only --step-archs sdnet,sdnet:32
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time

import torch
from monai.networks.layers.factories import Conv
from rich.console import Console
from rich.table import Table

from scseg.engine.device import cpu_has_native_bf16
from scseg.nn import create_model

STUDY_BATCH, STUDY_SLICE, STUDY_CLASSES = 16, (72, 80), 99
TOLERANCE = 0.02  # relative error of a bf16 weight gradient that still counts as right


def check(dims: int, cin: int, cout: int, size: int, repeats: int) -> tuple[float, int]:
    """Worst relative error of the bf16 weight gradient vs float32, and how many repeats differ
    from the first one."""
    conv = Conv[Conv.CONV, dims](cin, cout, 3, padding=1, bias=False)
    x = torch.randn(4, cin, *([size] * dims))
    conv(x).square().mean().backward()
    reference = conv.weight.grad.clone()
    worst, first, differ = 0.0, None, 0
    for _ in range(repeats):
        conv.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(x)
        out.float().square().mean().backward()
        grad = conv.weight.grad
        worst = max(worst, float((grad - reference).norm() / reference.norm()))  # inf / nan stay
        if not torch.isfinite(grad).all():
            worst = float("inf")
        if first is None:
            first = grad.clone()
        elif not torch.equal(grad, first):
            differ += 1
    return worst, differ


def step_seconds(arch: str, bf16: bool, repeats: int) -> float:
    """Median seconds of one training step (scSE, batch norm) after two warm-up steps; ``arch`` is
    a registry name, or ``name:N`` for that network at ``features=N``."""
    torch.manual_seed(0)
    name, _, width = arch.partition(":")
    options = {"features": int(width)} if width else {}
    net = create_model(name, 2, 1, STUDY_CLASSES, se="scse", norm="batch", **options)
    x = torch.randn(STUDY_BATCH, 1, *STUDY_SLICE)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        out.float().square().mean().backward()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", default="1,2,3,4,5", help="square / cubic feature-map sizes")
    parser.add_argument("--steps", action="store_true", help="also time training steps per architecture")
    parser.add_argument(
        "--step-archs", default="unet,resunet,sdnet,densenet", help="ARCH or ARCH:FEATURES, ..."
    )
    parser.add_argument("--float32-only", action="store_true", help="time float32 steps only")
    args = parser.parse_args()
    torch.manual_seed(0)
    table = Table(
        title=f"bf16 conv weight gradients, torch {torch.__version__}, native bf16: {cpu_has_native_bf16()}"
    )
    for column in (
        "dims",
        "channels in -> out",
        "map size",
        "worst rel. error vs float32",
        "repeats that differ",
        "verdict",
    ):
        table.add_column(column)
    failed_2d = False
    sizes = [int(s) for s in args.sizes.split(",")]
    for dims, size, (cin, cout) in itertools.product((2, 3), sizes, [(8, 16), (32, 64)]):
        worst, differ = check(dims, cin, cout, size, args.repeats)
        ok = worst < TOLERANCE and differ == 0
        failed_2d |= dims == 2 and not ok
        table.add_row(
            str(dims),
            f"{cin} -> {cout}",
            "x".join([str(size)] * dims),
            f"{worst:.3g}",
            f"{differ} / {args.repeats - 1}",
            "ok" if ok else "WRONG",
        )
    console = Console()
    console.print(table)
    if args.steps:
        steps = Table(
            title=f"2D training step, {STUDY_BATCH} slices of {STUDY_SLICE}, {torch.get_num_threads()} threads"
        )
        for column in ("architecture", "float32 s", "bf16 s", "speed-up"):
            steps.add_column(column)
        for arch in args.step_archs.split(","):
            fp32 = step_seconds(arch, False, args.repeats)
            if args.float32_only:
                steps.add_row(arch, f"{fp32:.3f}", "-", "-")
                continue
            bf16 = step_seconds(arch, True, args.repeats)
            steps.add_row(arch, f"{fp32:.3f}", f"{bf16:.3f}", f"{fp32 / bf16:.2f}x")
        console.print(steps)
    return 1 if failed_2d else 0


if __name__ == "__main__":
    sys.exit(main())
