"""Peak memory and time of ``scseg predict`` on a CT-sized DICOM series (default 512 x 512 x 600).

Run by hand (results go to docs/benchmarks.md):

    .venv/bin/python benchmarks/predict_memory.py                        # ct_organs_3d.yaml (3 mm grid)
    .venv/bin/python benchmarks/predict_memory.py --set preprocessing.spacing=null   # native grid
    .venv/bin/python benchmarks/predict_memory.py --bundle               # + the exported MONAI bundle

With ``--bundle`` the same volume is also written as NIfTI, and ``scseg predict`` and
``python -m monai.bundle run`` of the exported bundle both segment that file (float32, as the
bundle runs), each measured in its own child process.

A synthetic body CT (HU values, a few organ-like ellipsoids) is written once as a DICOM series; a
run directory with randomly initialised weights stands in for a trained model (time and memory do
not depend on the weights). ``scseg predict`` then runs in a child process, whose peak RSS
(ru_maxrss) is the figure reported; the volume's own size is printed next to it for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def synthetic_ct(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """Air outside an elliptic body (soft tissue), with liver-, spleen- and kidney-like blobs."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 < 1
    volume = np.full(shape, -1000, dtype=np.int16)
    rng = np.random.default_rng(0)
    for k in range(shape[2]):
        z = 2 * k / max(1, shape[2] - 1) - 1
        slab = np.where(body, 40, -1000).astype(np.int16)
        for cx, cy, r, hu in ((-0.35, 0.0, 0.3, 60), (0.4, 0.1, 0.15, 50), (0.2, -0.3, 0.1, 30)):
            if abs(z) < 0.7:
                slab[((x - cx) ** 2 + (y - cy) ** 2) < (r * (1 - z * z)) ** 2] = hu
        volume[:, :, k] = slab + rng.normal(0, 10, shape[:2]).astype(np.int16)
    return volume


def make_series(folder: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> None:
    from scseg.io.dicom_series_writer import write_dicom_series

    if folder.is_dir() and len(list(folder.iterdir())) == shape[2]:
        return
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.array(shape) * np.array(spacing) / 2
    write_dicom_series(
        synthetic_ct(shape, spacing), affine, folder, series_description="bench ct", modality="CT"
    )


def make_run(run_dir: Path, config_path: Path, overrides: list[str]) -> None:
    """A model artefact (model.yaml + checkpoints/best.pt) with randomly initialised weights."""
    import torch

    from scseg.artefact import Checkpoint, ModelSpec, build_network, save_checkpoint, write_model_spec
    from scseg.artefact.layout import BEST_CHECKPOINT, MODEL_SPEC
    from scseg.config import load_config

    spec = ModelSpec.from_config(load_config(config_path, overrides))
    torch.manual_seed(0)
    model = build_network(spec.network)
    write_model_spec(run_dir / MODEL_SPEC, spec)
    save_checkpoint(run_dir / BEST_CHECKPOINT, Checkpoint(model=model.state_dict(), spec=spec.to_dict()))


def measured(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of one child process (its own rusage, via wait4)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command[:5])} failed:\n{process.stderr.read()[-3000:]}")
    return round(seconds, 1), round(usage.ru_maxrss * 1024 / 2**30, 2)


def bundle_comparison(series: Path, run_dir: Path, workdir: Path) -> dict:
    """``scseg predict`` and ``monai.bundle run`` on the same NIfTI file, each in its own process."""
    import nibabel as nib

    from scseg.bundle import export_bundle
    from scseg.io.dicom_series import find_series, read_series

    images = workdir / "nifti"
    if not (images / "ct.nii.gz").is_file():
        images.mkdir(parents=True, exist_ok=True)
        (found, *_), _ = find_series(series)
        nib.save(read_series(found), images / "ct.nii.gz")
    bundle = workdir / "bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    export_bundle(run_dir, bundle)
    predict = [sys.executable, "-m", "scseg", "predict", "-m", str(run_dir), "-i", str(images / "ct.nii.gz"),
               "-o", str(workdir / "out_nifti"), "--precision", "float32", "--device", "cpu"]  # fmt: skip
    run = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs/inference.json"),
           "--bundle_root", str(bundle), "--dataset_dir", str(images), "--output_dir", str(workdir / "out_bundle")]  # fmt: skip
    (p_s, p_gib), (b_s, b_gib) = measured(predict), measured(run)
    return {
        "predict_nifti": {"seconds": p_s, "peak_rss_gib": p_gib},
        "bundle": {"seconds": b_s, "peak_rss_gib": b_gib},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 600])
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 1.0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ct_organs_3d.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scseg-bench-predict"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bundle", action="store_true", help="also measure the exported MONAI bundle")
    args = parser.parse_args()

    shape, spacing = tuple(args.shape), tuple(args.spacing)
    series = args.workdir / f"ct_{'x'.join(map(str, shape))}"
    make_series(series, shape, spacing)
    run_dir = args.workdir / "run"
    make_run(run_dir, args.config, args.overrides)
    out = args.workdir / "out"
    command = [
        sys.executable,
        "-m",
        "scseg",
        "predict",
        "-m",
        str(run_dir),
        "-i",
        str(series),
        "-o",
        str(out),
    ]
    start = time.perf_counter()
    done = subprocess.run([*command, "--device", args.device], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"predict failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    voxels = int(np.prod(shape))
    extra = bundle_comparison(series, run_dir, args.workdir) if args.bundle else {}
    print(
        json.dumps(
            {
                **extra,
                "shape": shape,
                "spacing_mm": spacing,
                "config": str(args.config.relative_to(REPO)),
                "overrides": args.overrides,
                "seconds": round(seconds, 1),
                "peak_rss_gib": round(peak / 2**30, 2),
                "volume_float32_gib": round(voxels * 4 / 2**30, 2),
                "peak_in_float32_volumes": round(peak / (voxels * 4), 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
