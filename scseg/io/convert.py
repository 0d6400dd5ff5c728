"""``scseg convert``: one NIfTI per DICOM series, with the same reader that prediction uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from scseg.errors import DataError
from scseg.io.dicom_series import DicomSeries, find_series, read_series, sanitize


@dataclass
class ConversionResult:
    source: str
    output: Path | None
    status: str  # "written", "skipped" or "failed"
    detail: str = ""


def save_nifti_atomic(image: nib.Nifti1Image, path: Path) -> None:
    """Write ``image`` to ``path`` via a temp file in the same folder, then rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial.nii.gz")
    try:
        nib.save(image, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def series_output_path(out_dir: Path, series: DicomSeries) -> Path:
    """``OUT_DIR/<patient>/<study>/<series>.nii.gz`` with sanitised names."""
    return (
        out_dir
        / sanitize(series.patient_id or "unknown_patient")
        / sanitize(series.study_uid or "unknown_study")
        / f"{series.name}.nii.gz"
    )


def convert_folder(dicom_dir: str | Path, out_dir: str | Path) -> list[ConversionResult]:
    """Convert every image series under ``dicom_dir``; report skipped and failed ones instead of stopping.

    Raises:
        DataError: ``dicom_dir`` does not exist or holds no DICOM image series at all.
    """
    out_dir = Path(out_dir)
    series, skipped = find_series(dicom_dir)
    if not series and not skipped:
        raise DataError(f"no DICOM image series found under {dicom_dir}")
    results = [ConversionResult(str(s.folder), None, "skipped", s.reason) for s in skipped]
    used: set[Path] = set()
    for item in series:
        target = series_output_path(out_dir, item)
        if target in used:  # two series with the same number and description: keep both
            target = target.with_name(f"{item.name}_{sanitize(item.uid)[-12:]}.nii.gz")
        used.add(target)
        try:
            save_nifti_atomic(read_series(item), target)
            results.append(ConversionResult(str(item.files[0].parent), target, "written"))
        except DataError as err:
            results.append(ConversionResult(str(item.files[0].parent), None, "failed", str(err)))
    return results
