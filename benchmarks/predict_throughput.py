"""Batch prediction throughput: series per minute with 1 process vs N processes (torchrun shards).

Run by hand (results go to docs/benchmarks.md):

    .venv/bin/scseg train configs/hippocampus_3d.yaml --out runs/hippo3d --set train.time_limit_minutes=10
    .venv/bin/python benchmarks/predict_throughput.py --model runs/hippo3d \\
        --images ../shared/data/msd_hippocampus_mri/imagesTr --cases 50 --processes 1 2

Each setting predicts the same ``--cases`` NIfTI files into a fresh output folder (``--overwrite``
is not needed: nothing is reused), end to end through the console entry point: start-up, model
loading, reading, inference, writing. One process uses all cores for its threads; ``torchrun``
gives each of N processes ``cores / N`` threads (OMP_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(model: Path, images: Path, out: Path, processes: int) -> float:
    """Wall seconds of one ``scseg predict`` over ``images`` with ``processes`` processes."""
    scseg = [sys.executable, "-m", "scseg"]
    if processes > 1:
        scseg = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                 "-m", "scseg"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
    start = time.perf_counter()
    subprocess.run(
        [*scseg, "predict", "-m", str(model), "-i", str(images), "-o", str(out), "--device", "cpu"],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="a folder of NIfTI files")
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    files = sorted(p for p in args.images.iterdir() if p.name.endswith((".nii", ".nii.gz")))[: args.cases]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for file in files:
            shutil.copy(file, folder / file.name)
        print(f"{len(files)} cases, {os.cpu_count()} cores\n")
        print("| processes | wall (s) | series per minute | speed-up |")
        print("|---|---|---|---|")
        base = None
        for n in args.processes:
            wall = run(args.model, folder, Path(tmp) / f"out{n}", n)
            base = base or wall
            print(f"| {n} | {wall:.1f} | {60 * len(files) / wall:.1f} | {base / wall:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
