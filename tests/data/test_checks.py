"""Bad data is caught at load time with a message naming the file."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scseg.config import config_from_dict
from scseg.data.transforms import validation_transforms
from scseg.errors import DataError


def _pair(tmp_path: Path, image: np.ndarray, label: np.ndarray, label_affine=None) -> dict:
    affine = np.eye(4)
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), tmp_path / "img.nii.gz")
    nib.save(
        nib.Nifti1Image(label.astype(np.uint8), affine if label_affine is None else label_affine),
        tmp_path / "lab.nii.gz",
    )
    return {"image": str(tmp_path / "img.nii.gz"), "label": str(tmp_path / "lab.nii.gz")}


def _load(tiny_config: dict, item: dict):
    try:
        return validation_transforms(config_from_dict(tiny_config))(item)
    except RuntimeError as err:  # MONAI wraps transform errors
        raise err.__cause__ or err  # noqa: B904


def test_good_pair_passes(tmp_path: Path, tiny_config: dict) -> None:
    out = _load(
        tiny_config, _pair(tmp_path, np.random.rand(20, 20, 20), np.random.randint(0, 4, (20, 20, 20)))
    )
    assert out["image"].shape == (1, 20, 20, 20)


def test_nan_in_image_is_named(tmp_path: Path, tiny_config: dict) -> None:
    image = np.random.rand(20, 20, 20)
    image[3, 4, 5] = np.nan
    with pytest.raises(DataError, match=r"img.nii.gz contains NaN"):
        _load(tiny_config, _pair(tmp_path, image, np.zeros((20, 20, 20))))


def test_shape_mismatch_is_named(tmp_path: Path, tiny_config: dict) -> None:
    with pytest.raises(DataError, match=r"lab.nii.gz has shape \(20, 20, 18\) but its image .*img.nii.gz"):
        _load(tiny_config, _pair(tmp_path, np.random.rand(20, 20, 20), np.zeros((20, 20, 18))))


def test_geometry_mismatch_is_named(tmp_path: Path, tiny_config: dict) -> None:
    shifted = np.eye(4)
    shifted[0, 3] = 2.5
    with pytest.raises(DataError, match="different geometry"):
        _load(tiny_config, _pair(tmp_path, np.random.rand(20, 20, 20), np.zeros((20, 20, 20)), shifted))


def test_label_value_outside_label_names_is_named(tmp_path: Path, tiny_config: dict) -> None:
    label = np.zeros((20, 20, 20))
    label[5, 5, 5] = 7
    with pytest.raises(DataError, match=r"lab.nii.gz holds values \[7\] outside 0..3"):
        _load(tiny_config, _pair(tmp_path, np.random.rand(20, 20, 20), label))
