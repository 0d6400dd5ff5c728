"""Synthetic labelled phantoms for the demo and the tests: no download, a few seconds to make.

Each phantom is a head-like ellipsoid of "tissue" holding three structures with distinct (but
noisy, bias-field-distorted) intensities: a dark ``ventricle`` ellipsoid, a bright ``lesion`` ball
and a thin ``rim`` shell just inside the head's boundary. Shapes, sizes, positions and contrasts
vary per case, so a model has to learn shape and context, not one threshold.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from scseg.io.dicom_series_writer import write_dicom_series

PHANTOM_LABELS = ("ventricle", "lesion", "rim")


@dataclass(frozen=True)
class PhantomDataset:
    """Where :func:`make_phantom_dataset` wrote things."""

    root: Path
    csv: Path
    dicom_case: str | None


def _ellipsoid(grid: tuple[np.ndarray, ...], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def make_phantom(shape: tuple[int, int, int] = (40, 48, 40), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: (image float32, label uint8 with values 0..3) of ``shape``."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    size = np.array(shape, dtype=np.float32)
    centre = size / 2 + rng.uniform(-2, 2, 3)
    head_radii = size / 2 * rng.uniform(0.78, 0.9, 3)
    head = _ellipsoid(grid, centre, head_radii)
    inner = _ellipsoid(grid, centre, head_radii - rng.uniform(2.2, 3.2))
    label = np.zeros(shape, np.uint8)
    label[head & ~inner] = 3  # rim
    vent_radii = head_radii * rng.uniform([0.25, 0.3, 0.2], [0.4, 0.45, 0.35])
    label[_ellipsoid(grid, centre + rng.uniform(-3, 3, 3), vent_radii)] = 1
    lesion_centre = centre + rng.uniform(-1, 1, 3) * head_radii * 0.45
    lesion_centre[0] += np.sign(lesion_centre[0] - centre[0] + 1e-3) * vent_radii[0]
    label[_ellipsoid(grid, lesion_centre, np.full(3, rng.uniform(4.5, 6.0))) & inner] = 2

    means = {0: 0.0, 1: rng.uniform(0.15, 0.3), 2: rng.uniform(0.85, 1.0), 3: rng.uniform(0.7, 0.85)}
    tissue = rng.uniform(0.45, 0.6)
    image = np.where(head, tissue, means[0]).astype(np.float32)
    for value in (1, 2, 3):
        image[label == value] = means[value]
    bias = 1.0 + 0.15 * np.sin(grid[0] / size[0] * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, np.pi))
    image = image * bias + rng.normal(0.0, 0.07, shape).astype(np.float32)
    return (image * 1000.0).astype(np.float32), label


def make_phantom_dataset(
    folder: str | Path,
    n_cases: int = 24,
    shape: tuple[int, int, int] = (40, 48, 40),
    spacing: float = 1.5,
    seed: int = 0,
    dicom_cases: int = 1,
) -> PhantomDataset:
    """Write ``n_cases`` phantoms as NIfTI (``imagesTr/``, ``labelsTr/``) plus a ``dataset.csv``.

    The first ``dicom_cases`` images are also written as DICOM series under ``dicom/<case>/``, and
    ``dataset.csv`` points at the DICOM folder for them, so training reads both formats.
    Existing files are overwritten (the folder is a scratch area the demo owns).
    """
    root = Path(folder)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-spacing * shape[0] / 2, -spacing * shape[1] / 2, -spacing * shape[2] / 2]
    rows = []
    dicom_case = None
    for i in range(n_cases):
        name = f"phantom_{i:03d}"
        image, label = make_phantom(shape, seed=seed * 1000 + i)
        image_path, label_path = root / "imagesTr" / f"{name}.nii.gz", root / "labelsTr" / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), image_path)
        nib.save(nib.Nifti1Image(label, affine), label_path)
        source = image_path
        if i < dicom_cases:
            source = root / "dicom" / name
            for old in source.glob("*.dcm"):
                old.unlink()
            write_dicom_series(image, affine, source, patient_id=name, series_description=f"scseg {name}")
            dicom_case = dicom_case or name
        rows.append(
            {"name": name, "image": str(source.relative_to(root)), "label": str(label_path.relative_to(root))}
        )
    csv_path = root / "dataset.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["name", "image", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return PhantomDataset(root, csv_path, dicom_case)
