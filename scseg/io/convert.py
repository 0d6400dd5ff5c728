"""``scseg convert``: one NIfTI per DICOM series, with the same reader that prediction uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scseg.errors import DataError
from scseg.io.atomic import check_writable, save_nifti_atomic
from scseg.io.dicom_series import SkippedSeries, find_series, read_series
from scseg.io.names import display_path
from scseg.io.output_names import resolve_targets, series_target


@dataclass
class ConversionResult:
    source: str
    output: Path | None
    status: str  # "written", "skipped" or "failed"
    detail: str = ""


def skipped_status(skipped: SkippedSeries) -> str:
    """``failed`` for image series that could not be read; ``skipped`` for what is not meant to be."""
    return "failed" if skipped.failed else "skipped"


def convert_folder(dicom_dir: str | Path, out_dir: str | Path) -> list[ConversionResult]:
    """Convert every image series under ``dicom_dir``; report skipped and failed ones instead of stopping.

    Output names are those of ``scseg predict`` (:mod:`scseg.io.output_names`) plus ``.nii.gz``.

    Raises:
        DataError: ``dicom_dir`` does not exist or holds no DICOM image series at all.
        ConfigError: ``out_dir`` cannot be written to (e.g. it lies under a file).
    """
    out_dir = Path(out_dir)
    series, skipped = find_series(dicom_dir, exclude=[out_dir])
    if not series and not skipped:
        raise DataError(f"no DICOM image series found under {display_path(Path(dicom_dir))}")
    check_writable(out_dir, "OUT_DIR")
    results = [ConversionResult(display_path(s.folder), None, skipped_status(s), s.reason) for s in skipped]
    targets = [series_target(out_dir, item) for item in series]
    resolve_targets(targets, check_owners=False)
    for item, target in zip(series, targets, strict=True):
        path = target.path.with_name(f"{target.path.name}.nii.gz")
        source = display_path(item.files[0].parent)
        try:
            save_nifti_atomic(read_series(item), path)
            results.append(ConversionResult(source, path, "written"))
        except DataError as err:
            results.append(ConversionResult(source, None, "failed", str(err)))
    return results
