"""``scseg convert``: one NIfTI per DICOM series, with the same reader that prediction uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scseg.errors import DataError
from scseg.io.atomic import save_nifti_atomic
from scseg.io.dicom_series import DicomSeries, SkippedSeries, find_series, read_series, sanitize


@dataclass
class ConversionResult:
    source: str
    output: Path | None
    status: str  # "written", "skipped" or "failed"
    detail: str = ""


def series_output_dir(out_dir: Path, series: DicomSeries, used: set[Path]) -> Path:
    """``OUT_DIR/<patient>/<study>/<series>`` (sanitised), unique among ``used`` (which it extends).

    Two series with the same number and description in one study both keep their output: the
    second gets the end of its SeriesInstanceUID appended.
    """
    target = (
        out_dir
        / sanitize(series.patient_id or "unknown_patient")
        / sanitize(series.study_uid or "unknown_study")
        / series.name
    )
    if target in used:
        target = target.with_name(f"{series.name}_{sanitize(series.uid)[-12:]}")
    used.add(target)
    return target


def skipped_status(skipped: SkippedSeries) -> str:
    """``failed`` for image series that could not be read; ``skipped`` for what is not meant to be."""
    return "failed" if skipped.failed else "skipped"


def convert_folder(dicom_dir: str | Path, out_dir: str | Path) -> list[ConversionResult]:
    """Convert every image series under ``dicom_dir``; report skipped and failed ones instead of stopping.

    Raises:
        DataError: ``dicom_dir`` does not exist or holds no DICOM image series at all.
    """
    out_dir = Path(out_dir)
    series, skipped = find_series(dicom_dir)
    if not series and not skipped:
        raise DataError(f"no DICOM image series found under {dicom_dir}")
    results = [ConversionResult(str(s.folder), None, skipped_status(s), s.reason) for s in skipped]
    used: set[Path] = set()
    for item in series:
        folder = series_output_dir(out_dir, item, used)
        target = folder.with_name(f"{folder.name}.nii.gz")
        try:
            save_nifti_atomic(read_series(item), target)
            results.append(ConversionResult(str(item.files[0].parent), target, "written"))
        except DataError as err:
            results.append(ConversionResult(str(item.files[0].parent), None, "failed", str(err)))
    return results
