"""Shared helpers of the prediction tests: Dice of one label value, an image stored in another orientation."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    x, y = a == value, b == value
    return float(2 * (x & y).sum() / max(1, x.sum() + y.sum()))


def lps_copy(path: Path, out: Path) -> nib.Nifti1Image:
    """The same voxels stored with the first two axes flipped (LPS) and the axes permuted."""
    image = nib.load(path)
    ornt = nib.orientations.axcodes2ornt(("A", "L", "I"))
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(image.affine), ornt)
    moved = image.as_reoriented(transform)
    nib.save(moved, out)
    return nib.load(out)
