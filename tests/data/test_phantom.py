"""The synthetic demo phantoms, and their DICOM copy's geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from scseg.config import config_from_dict
from scseg.data.phantom import PHANTOM_LABELS, make_phantom
from scseg.data.transforms import validation_transforms


def test_phantom_has_every_structure_with_distinct_intensities() -> None:
    image, label = make_phantom((40, 48, 40), seed=5)
    assert image.shape == label.shape == (40, 48, 40)
    assert set(np.unique(label)) == set(range(len(PHANTOM_LABELS) + 1))
    means = [image[label == v].mean() for v in range(4)]
    assert means[1] < means[0] + 300 and means[2] > means[1] + 300  # dark ventricle, bright lesion
    other = make_phantom((40, 48, 40), seed=6)[1]
    assert not np.array_equal(label, other), "cases differ"


def test_dicom_copy_loads_onto_the_nifti_grid(phantom_root: Path, tiny_config: dict) -> None:
    files = sorted((phantom_root / "dicom" / "phantom_000").glob("*.dcm"))
    assert len(files) == 32
    ds = pydicom.dcmread(files[0])
    assert ds.Modality == "MR" and ds.SeriesInstanceUID == pydicom.dcmread(files[-1]).SeriesInstanceUID
    config = config_from_dict(tiny_config)
    load = validation_transforms(config)
    from_dicom = load(
        {"image": str(files[0].parent), "label": str(phantom_root / "labelsTr/phantom_000.nii.gz")}
    )
    from_nifti = load(
        {
            "image": str(phantom_root / "imagesTr/phantom_000.nii.gz"),
            "label": str(phantom_root / "labelsTr/phantom_000.nii.gz"),
        }
    )
    np.testing.assert_allclose(
        np.asarray(from_dicom["image"].affine), np.asarray(from_nifti["image"].affine), atol=1e-4
    )
    # z-scored values agree up to the int16 quantisation of the DICOM copy
    np.testing.assert_allclose(np.asarray(from_dicom["image"]), np.asarray(from_nifti["image"]), atol=2e-3)
