"""A dataset's fingerprint (nnU-Net's term): what planning a config needs to know about the data.

Read once, case by case: voxel spacings and shapes (in RAS axis order, the order scseg trains in),
intensity statistics over the labelled foreground, the share of exactly-zero voxels (skull-stripped
or padded images), the modality, each structure's share of the foreground and its typical volume,
and left / right pairs from the structure names.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm.auto import tqdm

from scseg.config.data_section import DataConfig
from scseg.data.cases import Case, discover_cases
from scseg.errors import DataError
from scseg.io.dicom_series import find_series, read_series
from scseg.labels.laterality import pair_lateral

SAMPLES_PER_CASE = 10_000  # foreground intensities sampled per case (nnU-Net samples 10k too)


@dataclass
class Fingerprint:
    """What :func:`measure` found; every list has one entry per case (spacings, shapes)."""

    cases: int
    spacings: list[list[float]]  # mm, RAS axis order
    shapes: list[list[int]]  # voxels, RAS axis order
    box_shapes: list[list[int]]  # the bounding box of voxels > 0 (what a foreground crop keeps)
    intensity: dict[str, float]  # over the foreground: p00_5, p50, p99_5, mean, std; image minimum
    zero_fraction: float  # share of voxels exactly 0, over all images
    modality: str  # "CT" or "MR"
    modality_reason: str
    label_names: list[str]
    label_values: list[int]
    class_fraction: dict[str, float] = field(default_factory=dict)  # share of the foreground voxels
    class_median_ml: dict[str, float] = field(default_factory=dict)
    lr_pairs: list[tuple[str, str]] = field(default_factory=list)
    lr_unpaired: list[str] = field(default_factory=list)  # names that say a side but have no partner

    @property
    def median_spacing(self) -> list[float]:
        return [float(v) for v in np.median(np.array(self.spacings), axis=0)]

    @property
    def median_shape(self) -> list[float]:
        return [float(v) for v in np.median(np.array(self.shapes), axis=0)]

    @property
    def median_box_shape(self) -> list[float]:
        return [float(v) for v in np.median(np.array(self.box_shapes), axis=0)]

    def to_dict(self) -> dict:
        return {
            "cases": self.cases,
            "median_spacing_mm": [round(v, 3) for v in self.median_spacing],
            "spacing_range_mm": [
                [round(float(v), 3) for v in np.min(self.spacings, axis=0)],
                [round(float(v), 3) for v in np.max(self.spacings, axis=0)],
            ],
            "median_shape": [round(v) for v in self.median_shape],
            "median_nonzero_box": [round(v) for v in self.median_box_shape],
            "intensity_foreground": {k: round(v, 2) for k, v in self.intensity.items()},
            "zero_fraction": round(self.zero_fraction, 3),
            "modality": f"{self.modality} ({self.modality_reason})",
            "structures": len(self.label_names),
            "lr_pairs": len(self.lr_pairs),
            "lateral_unpaired": list(self.lr_unpaired),
            "smallest_structures": sorted(self.class_median_ml.items(), key=lambda kv: kv[1])[:3],
        }


def _image(case: Case) -> tuple[nib.Nifti1Image, str | None]:
    """The case's image in RAS order, and the DICOM Modality when it is a series."""
    if case.image.is_dir():
        (series, *_), _ = find_series(case.image)
        return nib.as_closest_canonical(read_series(series)), getattr(series, "modality", None)
    return nib.as_closest_canonical(nib.load(case.image)), None


def _dataset_modality(data: DataConfig) -> str | None:
    """MSD's ``dataset.json`` names the modality (``{"0": "MRI"}``)."""
    path = Path(data.root) / "dataset.json"
    try:
        modality = json.loads(path.read_text(encoding="utf-8")).get("modality", {})
    except (OSError, ValueError, AttributeError):
        return None
    first = str(next(iter(modality.values()), "")) if isinstance(modality, dict) else ""
    return first or None


def measure(data: DataConfig, progress: bool = True, seed: int = 0) -> Fingerprint:
    """Read every case of ``data`` once and fingerprint the dataset.

    Raises:
        DataError: unreadable cases, or a label map whose grid differs from its image's.
    """
    cases = discover_cases(data)
    rng = np.random.default_rng(seed)
    values = list(data.label_values or range(1, len(data.structure_names) + 1))
    lut = np.zeros(max(values) + 1, dtype=np.int64)
    lut[values] = np.arange(1, len(values) + 1)
    spacings, shapes, boxes, samples, dicom_modalities = [], [], [], [], []
    zeros = total = 0
    minimum = np.inf
    counts = np.zeros((len(cases), len(values) + 1))
    for i, case in enumerate(
        tqdm(cases, desc="fingerprint", unit="case", disable=not progress, file=sys.stderr)
    ):
        image, modality = _image(case)
        label = nib.as_closest_canonical(nib.load(case.label))
        if label.shape[:3] != image.shape[:3]:
            raise DataError(
                f"case {case.name}: label shape {label.shape[:3]} differs from the image's {image.shape[:3]}"
            )
        pixels = np.asanyarray(image.dataobj, dtype=np.float32).reshape(image.shape[:3])
        classes = np.asanyarray(label.dataobj).astype(np.int64)
        classes = np.where(classes <= lut.shape[0] - 1, lut[np.clip(classes, 0, lut.shape[0] - 1)], 0)
        spacings.append([float(z) for z in image.header.get_zooms()[:3]])
        shapes.append([int(s) for s in image.shape[:3]])
        boxes.append(_box_shape(pixels > 0))
        foreground = pixels[classes > 0]
        if foreground.size:
            samples.append(rng.choice(foreground, size=min(SAMPLES_PER_CASE, foreground.size), replace=False))
        zeros += int((pixels == 0).sum())
        total += pixels.size
        minimum = min(minimum, float(pixels.min()))
        counts[i] = np.bincount(classes.ravel(), minlength=len(values) + 1)[: len(values) + 1]
        if modality:
            dicom_modalities.append(modality)
    if not samples:
        raise DataError(f"no labelled voxel in any of the {len(cases)} cases: nothing to plan from")
    pooled = np.concatenate(samples)
    p005, p50, p995 = (float(v) for v in np.percentile(pooled, [0.5, 50, 99.5]))
    intensity = {"p00_5": p005, "p50": p50, "p99_5": p995, "mean": float(pooled.mean()),
                 "std": float(pooled.std()), "image_min": minimum}  # fmt: skip
    modality, reason = _guess_modality(intensity, dicom_modalities, _dataset_modality(data))
    voxel_ml = np.array([np.prod(s) / 1000.0 for s in spacings])
    names = data.structure_names
    fg = counts[:, 1:].sum()
    pairing = pair_lateral(list(names))
    return Fingerprint(
        cases=len(cases),
        spacings=spacings,
        shapes=shapes,
        box_shapes=boxes,
        intensity=intensity,
        zero_fraction=zeros / max(total, 1),
        modality=modality,
        modality_reason=reason,
        label_names=list(names),
        label_values=values,
        class_fraction={n: float(counts[:, k + 1].sum() / max(fg, 1)) for k, n in enumerate(names)},
        class_median_ml={n: float(np.median(counts[:, k + 1] * voxel_ml)) for k, n in enumerate(names)},
        lr_pairs=pairing.pairs,
        lr_unpaired=pairing.unpaired,
    )


def _box_shape(mask: np.ndarray) -> list[int]:
    """The extent of ``mask``'s bounding box along each axis (the whole shape when it is empty)."""
    extent = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        extent.append(int(hit[-1] - hit[0] + 1) if hit.size else int(mask.shape[axis]))
    return extent


def _guess_modality(intensity: dict[str, float], dicom: list[str], declared: str | None) -> tuple[str, str]:
    if dicom:
        kind = max(set(dicom), key=dicom.count)
        return ("CT" if kind == "CT" else "MR"), f"DICOM Modality {kind}"
    if declared:
        return ("CT" if declared.upper().startswith("CT") else "MR"), f"dataset.json modality {declared}"
    # Hounsfield units: air at -1000, fat below 0 inside the body; MR intensities are arbitrary and >= 0
    if intensity["image_min"] <= -500 and intensity["p00_5"] < 0:
        return "CT", f"intensities down to {intensity['image_min']:.0f} (Hounsfield units)"
    return "MR", f"no Hounsfield range (minimum {intensity['image_min']:.0f})"
