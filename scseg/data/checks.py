"""Validation transforms: catch bad data at load time with a message naming the file.

MONAI's transforms happily propagate NaNs, mismatched grids and stray label values into training;
these small checks turn them into :class:`~scseg.errors.DataError` right after loading.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.transforms import MapTransform

from scseg.errors import DataError


def source_of(data: Mapping[Hashable, Any], key: str) -> str:
    """The file a loaded item came from (MONAI keeps it in the MetaTensor's meta), or the raw entry."""
    value = data.get(key)
    meta = getattr(value, "meta", None)
    if isinstance(meta, dict) and meta.get("filename_or_obj"):
        return str(meta["filename_or_obj"])
    return str(data.get("name", "<unknown case>"))


class CheckImageLabeld(MapTransform):
    """Check that the image is finite, the label is on the image's grid, and label values are known.

    Args:
        num_classes: label values must lie in ``0 .. num_classes - 1``.
        image_key, label_key: dictionary keys.
        atol_mm: tolerance on the affine (world coordinates) when comparing grids.
    """

    def __init__(
        self, num_classes: int, image_key: str = "image", label_key: str = "label", atol_mm: float = 1e-3
    ):
        super().__init__([image_key, label_key])
        self.num_classes = num_classes
        self.image_key, self.label_key = image_key, label_key
        self.atol_mm = atol_mm

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image, label = d[self.image_key], d[self.label_key]
        image_src, label_src = source_of(d, self.image_key), source_of(d, self.label_key)
        if not bool(torch.isfinite(torch.as_tensor(image)).all()):
            raise DataError(f"image {image_src} contains NaN or infinite values; fix or exclude this case")
        if tuple(image.shape[1:]) != tuple(label.shape[1:]):
            raise DataError(
                f"label {label_src} has shape {tuple(label.shape[1:])} but its image {image_src} has "
                f"{tuple(image.shape[1:])}; they must share one voxel grid"
            )
        affine_i, affine_l = getattr(image, "affine", None), getattr(label, "affine", None)
        if affine_i is not None and affine_l is not None:
            diff = float(np.abs(np.asarray(affine_i, float) - np.asarray(affine_l, float)).max())
            if diff > self.atol_mm:
                raise DataError(
                    f"label {label_src} and image {image_src} have the same shape but different geometry "
                    f"(affines differ by up to {diff:.4g} mm); resample the label onto the image grid"
                )
        values = torch.unique(torch.as_tensor(label))
        bad = [
            int(v) if v == int(v) else v
            for v in values.tolist()
            if v != int(v) or not 0 <= v < self.num_classes
        ]
        if bad:
            raise DataError(
                f"label {label_src} holds values {bad[:10]} outside 0..{self.num_classes - 1}; data.label_names "
                f"names {self.num_classes - 1} structure(s). Add the missing names or fix the label map"
            )
        return d


class RemapLabelsd(MapTransform):
    """Map source label values to 1..K (in the given order) and every other value to background 0.

    MONAI's ``MapLabelValued`` keeps values it was not told about; atlases such as FreeSurfer's aseg
    or TotalSegmentator's 117 classes need the unlisted ones dropped, so this is a lookup table.
    """

    def __init__(self, source_values: list[int], label_key: str = "label") -> None:
        super().__init__([label_key])
        self.label_key = label_key
        self.lut = torch.zeros(max(source_values) + 1, dtype=torch.uint8)
        for target, value in enumerate(source_values, start=1):
            self.lut[value] = target

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        label = d[self.label_key]
        values = torch.as_tensor(label).round().long()
        inside = (values >= 0) & (values < len(self.lut))
        remapped = torch.where(inside, self.lut[values.clamp(0, len(self.lut) - 1)], 0)
        d[self.label_key] = (
            label.clone().copy_(remapped) if isinstance(label, torch.Tensor) else remapped.numpy()
        )
        return d


def check_label_ids_present(label_files: list[Path], values: list[int], names: list[str], what: str) -> None:
    """Refuse a label set that lists ids no label file holds (a wrong table, or the wrong data).

    Reads label files until every id has been seen (usually one or two files).

    Raises:
        DataError: the ids that appear in none of ``label_files``, with their names.
    """
    missing = set(values)
    for path in label_files:
        if not missing:
            break
        if path.is_file():
            data = np.asanyarray(nib.load(path).dataobj)
            missing -= set(np.unique(np.rint(data)).astype(np.int64).tolist())
    if missing:
        named = [f"{v} {n}" for v, n in zip(values, names, strict=True) if v in missing]
        raise DataError(
            f"{what} lists {len(named)} id(s) that none of the {len(label_files)} label files holds: "
            f"{', '.join(named[:10])}{' ...' if len(named) > 10 else ''}; remove them from the table, or "
            "check that data.root holds the data it was written for"
        )
