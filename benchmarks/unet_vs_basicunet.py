"""Our UNet (se=none) against MONAI's BasicUNet at the same widths: training-step time and peak RSS.

Run by hand (results go to docs/benchmarks.md):

    .venv/bin/python benchmarks/unet_vs_basicunet.py --repeats 5

Both are 3D U-Nets with two 3x3x3 conv + instance norm + LeakyReLU per level, max pooling and
transposed-convolution upsampling; widths 16-32-64-128-256 (BasicUNet's last entry, the width of
the final upsampling block, is 16 as well). Each model runs in its own subprocess (peak RSS =
ru_maxrss of that process), alternating over rounds; figures are medians.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

WIDTHS = (16, 32, 64, 128, 256)


def build(name: str):
    from monai.networks.nets import BasicUNet

    from scseg.nn import create_model

    if name == "basicunet":
        return BasicUNet(spatial_dims=3, in_channels=1, out_channels=3, features=(*WIDTHS, WIDTHS[0]),
                         norm=("instance", {"affine": True}))  # fmt: skip
    return create_model("unet", 3, 1, 3, se="none", features=WIDTHS, norm="instance")


def run(name: str, size: int, steps: int, threads: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(2, 1, size, size, size)
    y = torch.randint(0, 3, (2, size, size, size))
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if step:  # the first step warms up the allocator and kernels
            times.append(time.perf_counter() - start)
    return {
        "step_s": statistics.median(times),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child, args.size, args.steps, args.threads)))
        return
    names = ("scseg_unet", "basicunet")
    results: dict[str, list[dict]] = {n: [] for n in names}
    for round_ in range(args.repeats):
        for n in names:
            cmd = [sys.executable, __file__, "--child", n, "--size", str(args.size),
                   "--steps", str(args.steps), "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[n].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {round_ + 1}/{args.repeats} {n}: {results[n][-1]}", file=sys.stderr)
    t = {n: statistics.median(r["step_s"] for r in results[n]) for n in names}
    m = {n: statistics.median(r["peak_mib"] for r in results[n]) for n in names}
    print(f"3D, {args.size}^3, batch 2, {args.threads} threads, median of {args.repeats}\n")
    print("| model | parameters | step time (s) | vs BasicUNet | peak RSS (MiB) | vs BasicUNet |")
    print("|---|---|---|---|---|---|")
    for n in names:
        print(f"| {n} | {results[n][0]['params']:,} | {t[n]:.3f} | {t[n] / t['basicunet']:.2f}x "
              f"| {m[n]:.0f} | {m[n] / m['basicunet']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
