"""Scoring one case: ``evaluate_case`` (each structure on its box) against MONAI on whole volumes.

The whole-volume way is what ``evaluate_case`` did before it cropped to each structure's box: two
full-size masks per structure, then MONAI's Dice, HD95 and ASSD on them. Both are timed on the
same prediction / reference pair and their values compared (they must agree exactly).

    .venv/bin/python benchmarks/score_speed.py --pred runs/study/2d_unet_none_s0/evaluation/predictions/CASE.nii.gz \\
        --ref $SCSEG_DATA/mindboggle_oasis_trt20/labelsTr/CASE.nii.gz

Every value of the prediction names a structure (``label_<n>``); reference values it lacks are
scored too. Results: docs/benchmarks.md, "Scoring a whole-brain case".
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from scseg.evaluation.metrics import _surface_metrics, evaluate_case, voxel_spacing


def whole_volume_scores(pred: np.ndarray, ref: np.ndarray, values: list[int], spacing) -> dict[int, tuple]:
    """Dice, HD95, ASSD of every structure present on both sides, on full-size masks."""
    from monai.metrics import compute_dice

    out = {}
    for value in values:
        pm, rm = (torch.from_numpy(a == value)[None, None] for a in (pred, ref))
        if pm.any() and rm.any():
            dice = float(compute_dice(pm.float(), rm.float(), include_background=True))
            out[value] = (dice, *_surface_metrics(pm, rm, spacing))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pred", type=Path, required=True)
    parser.add_argument("--ref", type=Path, required=True)
    args = parser.parse_args()
    pred_image, ref_image = nib.load(args.pred), nib.load(args.ref)
    pred = np.asanyarray(pred_image.dataobj).astype(np.int64)
    ref = np.asanyarray(ref_image.dataobj).astype(np.int64)
    values = sorted(int(v) for v in np.union1d(np.unique(pred), np.unique(ref)) if v != 0)
    names = {v: f"label_{v}" for v in values}
    start = time.perf_counter()
    scores = evaluate_case(pred_image, ref_image, names, args.pred.name)
    boxed = time.perf_counter() - start
    start = time.perf_counter()
    reference = whole_volume_scores(pred, ref, values, voxel_spacing(ref_image.affine))
    whole = time.perf_counter() - start
    worst = 0.0
    for score in scores:
        if score.label_value in reference:
            pairs = zip((score.dice, score.hd95, score.assd), reference[score.label_value], strict=True)
            worst = max([worst, *(abs(a - b) for a, b in pairs if not math.isnan(b))])
    print("| structures | whole volumes | each on its box | speed-up | max difference |")
    print("|---|---|---|---|---|")
    print(f"| {len(values)} | {whole:.1f} s | {boxed:.1f} s | {whole / boxed:.1f}x | {worst:.3g} |")


if __name__ == "__main__":
    main()
