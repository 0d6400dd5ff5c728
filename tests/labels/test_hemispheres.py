"""Left / right pairs: detection, the flip that swaps them, and the sagittal merge / unmerge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scseg.config.load import config_from_dict
from scseg.data.lr_flip import RandFlipLRd
from scseg.errors import ConfigError
from scseg.labels.hemispheres import (
    detect_pairs,
    merged_classes,
    pair_classes,
    swap_table,
    unmerge_probabilities,
)

NAMES = [
    "Left-Hippocampus",
    "Brain-Stem",
    "Right-Hippocampus",
    "ctx-lh-insula",
    "ctx-rh-insula",
    "kidney_left",
    "kidney_right",
    "liver",
]


def test_pairs_are_found_by_naming_convention_or_declared() -> None:
    assert detect_pairs(NAMES) == [
        ("Left-Hippocampus", "Right-Hippocampus"),
        ("ctx-lh-insula", "ctx-rh-insula"),
        ("kidney_left", "kidney_right"),
    ]
    assert pair_classes(NAMES, None) == [(1, 3), (4, 5), (6, 7)]
    assert pair_classes(NAMES, [("kidney_left", "kidney_right")]) == [(6, 7)]
    with pytest.raises(ConfigError, match="'spleen' is not one of the structures"):
        pair_classes(NAMES, [("spleen", "liver")])


def test_a_flipped_image_with_swapped_labels_is_what_the_augmentation_yields() -> None:
    """A synthetic head: a left and a right structure of different shapes; after the flip the
    image is mirrored and the structure now on the left carries the left label."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 12, 8, 6, generator=generator)
    label = torch.zeros(1, 12, 8, 6)
    label[0, 1:4, 2:5, 1:3] = 1  # a left structure
    label[0, 8:10, 3:7, 2:5] = 3  # its right partner, another shape
    label[0, 5:7, 1:3, 1:2] = 2  # unpaired midline structure
    pairs = [(1, 3)]
    flip = RandFlipLRd(["image", "label"], spatial_axis=0, num_classes=4, pairs=pairs, prob=1.0)
    out = flip({"image": image.clone(), "label": label.clone()})
    assert torch.equal(out["image"], torch.flip(image, dims=[1]))
    expected = torch.as_tensor(swap_table(4, pairs))[torch.flip(label, dims=[1]).long()].float()
    assert torch.equal(out["label"], expected)
    # the region that was class 3 (right) now lies mirrored, where a left structure lies, and is class 1
    assert torch.equal(out["label"][0, 11 - 9 : 11 - 7, 3:7, 2:5], torch.ones(2, 4, 3))
    assert int((out["label"] == 2).sum()) == int((label == 2).sum()), "unpaired classes keep their value"
    never = RandFlipLRd(["image", "label"], spatial_axis=0, num_classes=4, pairs=pairs, prob=0.0)
    assert torch.equal(never({"image": image, "label": label})["label"], label)


def test_training_flips_swap_on_the_left_right_axis_only(tmp_path) -> None:
    raw = {
        "data": {"root": ".", "label_names": ["Left-Putamen", "Right-Putamen"]},
        "mode": {"type": "2d", "slice_axis": "coronal", "patch_size": [32, 32]},
        "model": {"name": "unet"},
    }
    config = config_from_dict(raw, base=tmp_path, check_data=False)
    assert config.lr_axis == 0, "RAS coronal slice: (x, z), x is left-right"
    sagittal = config_from_dict(
        {**raw, "mode": {"type": "2d", "slice_axis": "sagittal", "patch_size": [32, 32]}},
        base=tmp_path,
        check_data=False,
    )
    assert sagittal.lr_axis is None, "a sagittal slice has no left-right axis"
    lps = config_from_dict(
        {**raw, "preprocessing": {"orientation": "LPS"}, "mode": {"type": "3d", "patch_size": [16, 16, 16]}},
        base=tmp_path,
        check_data=False,
    )
    assert lps.lr_axis == 0
    from scseg.data.transforms import _augmentation

    kinds = [type(t).__name__ for t in _augmentation(config)[:2]]
    assert kinds == ["RandFlipLRd", "RandFlipd"]
    with pytest.raises(ConfigError, match="preprocessing.orientation"):
        config_from_dict({**raw, "preprocessing": {"orientation": None}}, base=tmp_path, check_data=False)


def test_sagittal_merge_and_unmerge() -> None:
    table = merged_classes(6, [(1, 4), (2, 5)])
    assert table.tolist() == [0, 1, 2, 3, 1, 2]
    labels = np.array([0, 1, 2, 3, 4, 5])
    assert table[labels].tolist() == [0, 1, 2, 3, 1, 2]
    merged = torch.softmax(torch.randn(2, 4, 5, 5), dim=1)
    full = unmerge_probabilities(merged, table)
    assert full.shape == (2, 6, 5, 5)
    assert torch.equal(full[:, 1], merged[:, 1]) and torch.equal(full[:, 4], merged[:, 1])
    assert torch.equal(full[:, 3], merged[:, 3])
