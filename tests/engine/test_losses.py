"""Losses: median-frequency weights, boundaries, the weighted CE + Dice and the configured loss."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scseg.engine.losses import WeightedCEDiceLoss, label_boundaries, median_frequency_weights


def test_median_frequency_weights_on_known_counts(tmp_path: Path) -> None:
    label = np.zeros(100, np.uint8)
    label[:10] = 1  # freq: bg 0.7, 1: 0.1, 2: 0.2
    label[10:30] = 2
    path = tmp_path / "l.nii.gz"
    nib.save(nib.Nifti1Image(label.reshape(10, 10, 1), np.eye(4)), path)
    weights = median_frequency_weights([str(path)], 4)
    # median of present frequencies (0.7, 0.1, 0.2) is 0.2; class 3 is absent -> largest weight
    torch.testing.assert_close(weights, torch.tensor([0.2 / 0.7, 2.0, 1.0, 2.0]))


def test_median_frequency_weights_follow_the_label_remapping(tmp_path: Path) -> None:
    label = np.zeros(100, np.uint8)
    label[:10] = 41  # an atlas id: becomes class 1
    label[10:30] = 17  # becomes class 2
    label[30:40] = 99  # not named: background
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(label.reshape(10, 10, 1), np.eye(4)), path)
    weights = median_frequency_weights([str(path)], 3, label_values=[41, 17])
    torch.testing.assert_close(weights, torch.tensor([0.2 / 0.7, 2.0, 1.0]))


def test_boundaries_mark_both_sides_of_a_label_edge() -> None:
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[:, :, 3:] = 1
    boundary = label_boundaries(target, 2)[0]
    assert boundary[:, 2:4].all() and not boundary[:, :2].any() and not boundary[:, 4:].any()


def test_weighted_ce_dice_equals_its_formula_and_prefers_right_answers() -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 1, 8, 8, 8))
    weights = torch.tensor([0.5, 2.0, 3.0])
    loss = WeightedCEDiceLoss(weights, boundary_weight=1.5, dice_weight=0.0)
    logits = torch.randn(2, 3, 8, 8, 8)
    labels = target[:, 0]
    w = weights[labels] + 1.5 * label_boundaries(labels, 3)
    expected = (w * F.cross_entropy(logits, labels, reduction="none")).mean()
    torch.testing.assert_close(loss(logits, target), expected)
    full = WeightedCEDiceLoss(weights)  # boundary weight defaults to 2 x median class weight
    assert full.boundary_weight == pytest.approx(4.0)
    good = F.one_hot(labels, 3).movedim(-1, 1).float() * 8.0
    assert full(good, target) < full(logits, target)
    assert torch.isfinite(full(logits.half().float(), target))
