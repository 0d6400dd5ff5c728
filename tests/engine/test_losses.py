"""Losses: median-frequency weights, boundaries, the weighted CE + Dice and the configured loss."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from scseg.engine.losses import (
    WeightedCEDiceLoss,
    label_boundaries,
    median_frequency_weights,
    soft_dice_loss,
)


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
    boundary = label_boundaries(target)[0]
    assert boundary[:, 2:4].all() and not boundary[:, :2].any() and not boundary[:, 4:].any()


@pytest.mark.parametrize("shape", [(3, 9, 11), (2, 6, 7, 5)])
def test_boundaries_equal_the_one_hot_definition(shape: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    target = torch.randint(0, 4, shape) * (torch.rand(shape) < 0.7)  # clumps of background too
    onehot = F.one_hot(target, 4).movedim(-1, 1).float()
    pool = (F.max_pool2d, F.max_pool3d)[len(shape) - 3]
    expected = (pool(onehot, 3, 1, 1) != -pool(-onehot, 3, 1, 1)).any(dim=1).float()
    torch.testing.assert_close(label_boundaries(target), expected)


@pytest.mark.parametrize("shape", [(2, 6, 9, 8), (1, 5, 4, 6, 3)])
def test_soft_dice_equals_monai_dice_loss_and_its_gradient(shape: tuple[int, ...]) -> None:
    torch.manual_seed(2)
    logits = torch.randn(shape, requires_grad=True)
    labels = torch.randint(0, shape[1] - 1, (shape[0], *shape[2:]))  # the last class never occurs
    monai = DiceLoss(to_onehot_y=True, include_background=False, batch=True)
    expected = monai(logits.softmax(1), labels.unsqueeze(1))
    (grad_expected,) = torch.autograd.grad(expected, logits)
    ours = soft_dice_loss(logits.softmax(1), labels)
    (grad,) = torch.autograd.grad(ours, logits)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(grad, grad_expected)


def test_weighted_ce_dice_equals_its_formula_and_prefers_right_answers() -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 1, 8, 8, 8))
    weights = torch.tensor([0.5, 2.0, 3.0])
    loss = WeightedCEDiceLoss(weights, boundary_weight=1.5, dice_weight=0.0)
    logits = torch.randn(2, 3, 8, 8, 8)
    labels = target[:, 0]
    w = weights[labels] + 1.5 * label_boundaries(labels)
    expected = (w * F.cross_entropy(logits, labels, reduction="none")).mean()
    torch.testing.assert_close(loss(logits, target), expected)
    full = WeightedCEDiceLoss(weights)  # boundary weight defaults to 2 x median class weight
    assert full.boundary_weight == pytest.approx(4.0)
    good = F.one_hot(labels, 3).movedim(-1, 1).float() * 8.0
    assert full(good, target) < full(logits, target)
    assert torch.isfinite(full(logits.half().float(), target))


def test_partial_label_loss_with_every_class_annotated_is_monai_dice_ce() -> None:
    from monai.losses import DiceCELoss

    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, 6, 5, 4, generator=generator, requires_grad=True)
    labels = torch.randint(0, 4, (3, 1, 6, 5, 4), generator=generator)
    monai = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)(logits, labels)
    partial = WeightedCEDiceLoss(torch.ones(4), 0.0)(logits, labels, torch.ones(3, 4))
    assert float(partial) == pytest.approx(float(monai), rel=1e-5)
    (grad_partial,) = torch.autograd.grad(partial, logits)
    (grad_monai,) = torch.autograd.grad(
        DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)(logits, labels),
        logits,
    )
    assert torch.allclose(grad_partial, grad_monai, atol=1e-6)


def test_partial_label_loss_does_not_punish_an_unannotated_structure() -> None:
    """Sample 0 did not annotate class 2: moving probability between background and class 2 on its
    voxels labelled 0 changes nothing, while the plain loss calls it a false positive. Sample 1 did
    annotate it, and there the same move costs."""
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 8, 8, generator=generator)
    labels = torch.randint(0, 2, (2, 1, 8, 8), generator=generator)  # class 2 appears nowhere
    annotated = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss = WeightedCEDiceLoss(torch.ones(3), 0.0)

    def swapped(sample: int) -> torch.Tensor:  # background and class 2 exchange logits in one sample
        out = logits.clone()
        out[sample, [0, 2]] = logits[sample, [2, 0]]
        return out

    assert float(loss(swapped(0), labels, annotated)) == pytest.approx(float(loss(logits, labels, annotated)))
    assert float(loss(swapped(0), labels)) != pytest.approx(float(loss(logits, labels)), rel=1e-3)
    assert float(loss(swapped(1), labels, annotated)) != pytest.approx(
        float(loss(logits, labels, annotated)), rel=1e-3
    )


def test_a_class_no_sample_annotated_drops_out_of_the_dice() -> None:
    probs = torch.softmax(torch.randn(2, 3, 5, 5), dim=1)
    labels = torch.randint(0, 2, (2, 5, 5))
    none_annotate_2 = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    only_class_1 = soft_dice_loss(probs[:, :2], labels)  # class 1's Dice term alone
    assert float(soft_dice_loss(probs, labels, none_annotate_2)) == pytest.approx(float(only_class_1))
