"""Slab-wise inversion onto the input grid equals MONAI's own inverse of the preprocessing."""

from __future__ import annotations

import copy

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from scseg.config import config_from_dict
from scseg.data.transforms import preprocessing
from scseg.engine import resample
from scseg.engine.resample import probabilities_to_labels
from tests.conftest import TINY


def _oblique_affine() -> np.ndarray:
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, -1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.9, 1.1, 2.0])  # LPS-ish, anisotropic, oblique
    affine[:3, 3] = [10.0, -5.0, 3.0]
    return affine


def test_inversion_matches_monai_inverse() -> None:
    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = "."
    raw["preprocessing"].update(spacing=[1.5, 1.5, 1.5], crop_foreground=True)
    pre = Compose(preprocessing(config_from_dict(raw).preprocessing, keys=("image",), load=False))
    rng = np.random.default_rng(0)
    image = np.zeros((30, 26, 14), np.float32)
    image[4:25, 3:20, 2:12] = rng.normal(1.0, 0.2, (21, 17, 10))  # foreground box: the crop removes the rest
    affine = _oblique_affine()
    out = pre({"image": MetaTensor(torch.from_numpy(image)[None], affine=torch.as_tensor(affine))})["image"]
    assert out.shape[1:] != image.shape  # resampled and cropped
    logits = torch.from_numpy(rng.normal(size=(4, *out.shape[1:])).astype(np.float32))
    probs = torch.softmax(logits * 3, dim=0)

    # MONAI's inverse, one class at a time (what Invertd does)
    expected = []
    for k in range(4):
        item = MetaTensor(probs[k : k + 1].clone(), meta=dict(out.meta))
        item.applied_operations = copy.deepcopy(out.applied_operations)
        expected.append(pre.inverse({"image": item})["image"][0].numpy())
    expected = np.stack(expected)
    mapping = np.linalg.solve(out.affine.numpy(), affine)
    ours = resample._sample_slab(probs, mapping, image.shape, 0, image.shape[2]).numpy()
    assert ours.shape == expected.shape == (4, *image.shape)
    np.testing.assert_allclose(ours, expected, atol=2e-4)

    labels, full = probabilities_to_labels(
        probs, out.affine.numpy(), affine, image.shape, [3, 7, 9], True, slab_voxels=2000
    )
    inside = expected.sum(axis=0) > 0.99
    reference = np.array([0, 3, 7, 9])[expected.argmax(axis=0)]
    assert (labels[inside] == reference[inside]).mean() > 0.999
    assert (labels[~inside] == 0).mean() > 0.5  # the cropped-away background
    np.testing.assert_allclose(full.sum(axis=-1), 1.0, atol=1e-5)


def test_whole_voxel_mappings_take_the_exact_path_and_agree_with_sampling() -> None:
    rng = np.random.default_rng(1)
    probs = torch.softmax(torch.from_numpy(rng.normal(size=(3, 9, 7, 5)).astype(np.float32)), dim=0)
    source = np.diag([1.0, 1.0, 2.0, 1.0])
    # target: axes permuted and flipped, shifted by whole voxels, larger than the source (crop undone)
    target = np.array([[0, -1.0, 0, 8], [1.0, 0, 0, -2], [0, 0, 2.0, -2], [0, 0, 0, 1]])
    mapping = np.linalg.solve(source, target)
    exact = resample._integer_mapping(mapping)
    assert exact is not None
    shape = (11, 12, 7)
    copied = resample._copy_slab(probs, exact, shape, 0, shape[2]).numpy()
    sampled = resample._renormalise_(resample._sample_slab(probs, mapping, shape, 0, shape[2])).numpy()
    np.testing.assert_allclose(copied, sampled, atol=1e-5)
    assert resample._integer_mapping(np.linalg.solve(source, np.diag([0.5, 1, 1, 1.0]))) is None


def test_whole_voxel_labels_are_the_argmax_moved_once() -> None:
    rng = np.random.default_rng(2)
    probs = torch.softmax(torch.from_numpy(rng.normal(size=(6, 9, 7, 5)).astype(np.float32)) * 3, dim=0)
    source = np.diag([1.0, 1.0, 2.0, 1.0])
    target = np.array([[0, -1.0, 0, 8], [1.0, 0, 0, -2], [0, 0, 2.0, -2], [0, 0, 0, 1]])
    values = [3, 7, 9, 11, 250]
    labels, _ = probabilities_to_labels(probs, source, target, (11, 12, 7), values, slab_voxels=300)
    # the general path: probabilities moved first, argmax on the target grid
    with_probs, moved = probabilities_to_labels(
        probs, source, target, (11, 12, 7), values, True, slab_voxels=300
    )
    np.testing.assert_array_equal(labels, with_probs)
    np.testing.assert_array_equal(labels, np.array([0, *values])[moved.argmax(axis=-1)])
    assert (labels == 0).any() and len(np.unique(labels)) > 3  # outside is background; classes vary
