"""Metric values on hand-built volumes with known Dice / HD95 / ASSD, anisotropic spacing included."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest

from scseg.errors import DataError
from scseg.evaluation.metrics import evaluate_case

NAMES = {1: "box", 2: "other"}


def image(data: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> nib.Nifti1Image:
    return nib.Nifti1Image(data.astype(np.uint8), np.diag([*spacing, 1.0]))


def test_shifted_box_has_the_dice_and_distances_worked_out_by_hand() -> None:
    ref = np.zeros((30, 30, 30), np.uint8)
    ref[10:20, 10:20, 10:20] = 1  # 1000 voxels
    pred = np.zeros_like(ref)
    pred[12:22, 10:20, 10:20] = 1  # shifted by 2 voxels along x: overlap 800
    (box, other) = evaluate_case(image(pred), image(ref), NAMES, "c")
    assert box.dice == pytest.approx(2 * 800 / 2000)
    # every surface point is at most 2 voxels from the other surface, and the x-faces exactly 2
    assert box.hd95 == pytest.approx(2.0)
    assert 0 < box.assd < 2.0
    assert box.volume_diff_ml == 0 and box.volume_ref_ml == pytest.approx(1.0)
    assert other.note == "absent_in_both" and math.isnan(other.dice) and math.isnan(other.hd95)


def test_distances_are_in_millimetres_with_anisotropic_voxels() -> None:
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:15, 5:15, 5:10] = 1
    pred = np.zeros_like(ref)
    pred[5:15, 5:15, 6:11] = 1  # shifted by one voxel along z
    iso = evaluate_case(image(pred), image(ref), NAMES, "c")[0]
    aniso = evaluate_case(image(pred, (0.5, 0.5, 3.0)), image(ref, (0.5, 0.5, 3.0)), NAMES, "c")[0]
    assert iso.dice == aniso.dice == pytest.approx(0.8)
    assert iso.hd95 == pytest.approx(1.0) and aniso.hd95 == pytest.approx(3.0)
    assert aniso.volume_ref_ml == pytest.approx(500 * 0.75 / 1000)


def test_a_structure_absent_on_one_side_scores_zero_with_a_flag() -> None:
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[2:5, 2:5, 2:5] = 1
    pred = np.zeros_like(ref)
    pred[6:8, 6:8, 6:8] = 2  # "other" predicted but not in the reference; "box" missed
    box, other = evaluate_case(image(pred), image(ref), NAMES, "c")
    assert box.dice == 0 and box.note == "absent_in_prediction" and math.isnan(box.hd95)
    assert other.dice == 0 and other.note == "absent_in_reference" and math.isnan(other.volume_diff_percent)
    assert box.volume_diff_percent == pytest.approx(-100.0)


def test_geometry_and_label_errors_are_clear() -> None:
    ref = np.zeros((10, 10, 10), np.uint8)
    with pytest.raises(DataError, match="shape"):
        evaluate_case(image(np.zeros((10, 10, 9))), image(ref), NAMES, "c")
    with pytest.raises(DataError, match="affines differ"):
        evaluate_case(image(ref, (1.0, 1.0, 1.2)), image(ref), NAMES, "c")
    bad = ref.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(DataError, match=r"label value\(s\) \[7\]"):
        evaluate_case(image(bad), image(ref), NAMES, "c")
    huge = np.zeros((10, 10, 10), np.int64)
    huge[1, 2, 3] = 2**40  # counting up to it would need 8 TB: refused by value, before counting
    with pytest.raises(
        DataError,
        match=r"the reference label map holds values from 0 to 1.09951e\+12; expected label values 0..65535",
    ):
        evaluate_case(image(ref), nib.Nifti1Image(huge, np.eye(4), dtype=np.int64), NAMES, "c")


def test_box_cropped_metrics_equal_monai_on_the_whole_volume() -> None:
    """Structures are scored on their union box; values must not change, borders included."""
    import torch
    from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance
    from scipy import ndimage

    rng = np.random.default_rng(0)
    shape, spacing = (40, 36, 30), (0.8, 1.0, 2.5)
    smooth = [ndimage.gaussian_filter(rng.normal(size=shape), 3) for _ in range(2)]
    ref = np.digitize(smooth[0], np.quantile(smooth[0], [0.3, 0.5, 0.7, 0.9])).astype(np.uint8)
    pred = np.where(smooth[1] > np.quantile(smooth[1], 0.97), 4, ref).astype(np.uint8)  # errors
    pred[:, :, :3] = ref[:, :, :3] = 0  # label 1..4 touch the other five faces, not this one
    ref[18:22, 16:20, 10:14] = 5  # an interior structure, its prediction shifted out of its box
    pred[20:25, 16:20, 10:14] = 5
    names = {v: f"s{v}" for v in range(1, 6)}
    scores = evaluate_case(image(pred, spacing), image(ref, spacing), names, "c")
    for value, score in zip(names, scores, strict=True):
        pm, rm = (torch.from_numpy(a == value)[None, None] for a in (pred, ref))
        assert score.dice == pytest.approx(
            float(compute_dice(pm.float(), rm.float(), include_background=True))
        )
        hd95 = compute_hausdorff_distance(
            pm, rm, include_background=True, percentile=95, spacing=list(spacing)
        )
        assd = compute_average_surface_distance(
            pm, rm, include_background=True, symmetric=True, spacing=list(spacing)
        )
        assert score.hd95 == pytest.approx(float(hd95)) and score.assd == pytest.approx(float(assd))
    assert any(s.hd95 > 0 for s in scores)
    assert ref[0].any() and ref[-1].any() and ref[:, 0].any() and ref[:, -1].any()  # border-touching
