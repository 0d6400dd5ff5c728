"""Find DICOM series in a folder tree and read them onto a correct voxel grid.

Who does what: pydicom reads headers only (fast: no pixel data) to group files by
SeriesInstanceUID, skip localizers and non-image objects, sort slices along the slice normal and
check the geometry. Uncompressed single-frame series are then read by pydicom into one array
(scseg/io/native_pixels.py); SimpleITK (GDCM) reads the pixels of everything else, decoding
compressed transfer syntaxes (JPEG 2000, JPEG lossless, RLE) and applying RescaleSlope/Intercept.
Geometry problems are refused with a clear message rather than silently resampled:
duplicate positions, missing slices / uneven spacing, gantry tilt, mixed image sizes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk

from scseg.errors import DataError
from scseg.io.dicom_headers import (
    compressed_size_mismatch,
    file_problems,
    group_headers,
    text_of,
)
from scseg.io.memory import check_fits_in_memory
from scseg.io.names import display_path, sanitize
from scseg.io.native_pixels import SliceHeader, read_native_series, rescale_of
from scseg.io.walk import FileTree, walk_files

# SOP classes that carry no image to segment (DICOM SEG, RT structures, structured reports, ...)
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "SR", "PR", "KO", "REG"}
TILT_TOLERANCE_DEG = 0.5
SPACING_TOLERANCE = 0.02  # relative deviation of a slice step from the median step


class SeriesError(DataError):
    """A series whose geometry cannot be turned into a regular voxel grid."""


@dataclass
class DicomSeries:
    """One image series: its files sorted along the slice normal, and who/what it is."""

    uid: str
    files: list[Path]
    patient_id: str = ""
    study_uid: str = ""
    series_number: str = ""
    description: str = ""
    modality: str = ""
    slice_spacing: float | None = None
    warnings: list[str] = field(default_factory=list)
    headers: list[SliceHeader] = field(default_factory=list, repr=False)  # per file, for native reads

    @property
    def name(self) -> str:
        """A file-system-safe name: series number and description."""
        return sanitize(f"{self.series_number}_{self.description}".strip("_") or self.uid)


@dataclass
class SkippedSeries:
    """A series that is not read: ``failed`` when it is an image series scseg cannot put on a regular
    grid (bad geometry, mixed sizes); not failed for localizers, non-image objects, single slices."""

    uid: str
    folder: Path
    reason: str
    failed: bool = False


def _vector(ds: pydicom.Dataset, tag: str, n: int) -> np.ndarray | None:
    value = getattr(ds, tag, None)
    if value is None or len(value) != n:
        return None
    return np.array([float(v) for v in value])


def sort_slices(headers: list[tuple[Path, pydicom.Dataset]], label: str) -> tuple[list[Path], float]:
    """Sort single-frame slices along their normal; check orientation, spacing, duplicates and tilt.

    Returns:
        The sorted file list and the slice spacing taken from the positions (not SliceThickness).
    """
    orientations = [_vector(ds, "ImageOrientationPatient", 6) for _, ds in headers]
    positions = [_vector(ds, "ImagePositionPatient", 3) for _, ds in headers]
    if any(o is None for o in orientations) or any(p is None for p in positions):
        raise SeriesError(f"{label}: slices lack ImageOrientationPatient/ImagePositionPatient")
    iop = np.array(orientations)
    if np.abs(iop - iop[0]).max() > 1e-3:
        raise SeriesError(f"{label}: slices have different orientations (a mixed or multi-stack series)")
    row, col = iop[0, :3], iop[0, 3:]
    normal = np.cross(row, col)
    ipp = np.array(positions)
    order = np.argsort(ipp @ normal)
    ipp = ipp[order]
    steps = np.diff(ipp, axis=0)
    distances = np.linalg.norm(steps, axis=1)
    if (distances < 1e-3).any():
        raise SeriesError(f"{label}: {int((distances < 1e-3).sum())} duplicate slice position(s)")
    cosines = np.abs(steps @ normal) / distances
    tilt = float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))
    if tilt > TILT_TOLERANCE_DEG:
        raise SeriesError(
            f"{label}: gantry tilt / sheared stack of {tilt:.1f} degrees (slices are not stacked along their "
            "normal). scseg refuses it rather than guess; resample to an orthogonal grid first "
            "(e.g. dcm2niix, which corrects gantry tilt)"
        )
    along = steps @ normal
    median = float(np.median(along))
    if np.abs(along - median).max() > SPACING_TOLERANCE * median:
        raise SeriesError(
            f"{label}: uneven slice spacing ({along.min():.3f}-{along.max():.3f} mm between neighbours): "
            "missing slices or a variable-gap acquisition; it cannot be read as one regular grid"
        )
    return [headers[i][0] for i in order], median


def _unique_instances(
    members: list[tuple[Path, pydicom.Dataset]],
) -> tuple[list[tuple[Path, pydicom.Dataset]], list[Path]]:
    """One file per SOPInstanceUID (exports often hold copies, some truncated): keep the largest."""
    best: dict[str, tuple[Path, pydicom.Dataset]] = {}
    dropped = []
    for path, ds in members:
        key = text_of(ds, "SOPInstanceUID") or str(path)
        if key in best:
            keep, drop = sorted([best[key], (path, ds)], key=lambda m: m[0].stat().st_size, reverse=True)
            best[key] = keep
            dropped.append(drop[0])
        else:
            best[key] = (path, ds)
    return list(best.values()), dropped


def find_series(
    root: str | Path,
    exclude: list[Path] | None = None,
    skip_folder: Callable[[Path], bool] | None = None,
    tree: FileTree | None = None,
) -> tuple[list[DicomSeries], list[SkippedSeries]]:
    """All readable image series under ``root`` (any depth, any file names; non-DICOM ignored).

    Args:
        root: a folder tree or one file.
        exclude: folders under ``root`` not to look into.
        skip_folder: or a test that says which (e.g. result folders of ``scseg predict``).
        tree: the files under ``root`` when the caller has listed them already (a large PACS
            export is then walked once); ``exclude`` and ``skip_folder`` are the caller's business.

    Returns:
        The series (files sorted along the slice normal) and the skipped ones with their reason
        (localizers, non-image objects, fewer than 2 slices); ``failed`` ones for image series that
        cannot be read whole (bad geometry, a truncated, unreadable or inconsistent file), for
        folders that cannot be listed and for unreadable DICOM files that belong to no series.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{display_path(root)} does not exist")
    if tree is None:
        excluded = [e.resolve() for e in exclude or []]
        tree = walk_files(
            root, lambda d: d.resolve() in excluded or (skip_folder is not None and skip_folder(d))
        )
    groups, offsets, broken = group_headers(tree.files)
    series: list[DicomSeries] = []
    skipped = [
        SkippedSeries("", folder, f"folder {display_path(folder)} cannot be read ({why})", True)
        for folder, why in tree.unreadable
    ]
    claimed: set[Path] = set()
    for uid, found in groups.items():
        members, dropped = _unique_instances(found)
        first = next((ds for _, ds in members if "Rows" in ds), members[0][1])
        folder = members[0][0].parent
        label = (
            f"series {text_of(first, 'SeriesNumber') or '?'} '{text_of(first, 'SeriesDescription')}' "
            f"in {display_path(folder)}"
        )
        modality = str(getattr(first, "Modality", ""))
        if modality in NON_IMAGE_MODALITIES or not hasattr(first, "Rows"):
            skipped.append(
                SkippedSeries(uid, folder, f"{label}: not an image series ({modality or 'no pixels'})")
            )
            continue
        if any("LOCALIZER" in str(v).upper() for v in getattr(first, "ImageType", [])):
            skipped.append(SkippedSeries(uid, folder, f"{label}: localizer / scout"))
            continue
        problems = file_problems(uid, members, offsets, broken)
        claimed |= {
            b.path for b in broken if b.series_uid == uid or b.path.parent in {p.parent for p, _ in members}
        }
        if problems:
            more = f" (and {len(problems) - 1} more file(s))" if len(problems) > 1 else ""
            skipped.append(SkippedSeries(uid, folder, f"{label}: {problems[0]}{more}", True))
            continue
        info = DicomSeries(
            uid,
            [],
            text_of(first, "PatientID"),
            text_of(first, "StudyInstanceUID"),
            text_of(first, "SeriesNumber"),
            text_of(first, "SeriesDescription"),
            modality,
        )
        if dropped:
            info.warnings.append(
                f"{label}: {len(dropped)} repeated instance(s) ignored (kept the largest file)"
            )
        frames = int(getattr(first, "NumberOfFrames", 1) or 1)
        if len(members) == 1 and frames > 1:
            info.files = [members[0][0]]  # enhanced multi-frame: one file holds the volume
            series.append(info)
            continue
        sizes = Counter((int(ds.Rows), int(ds.Columns)) for _, ds in members)
        if len(sizes) > 1:
            common = sizes.most_common(1)[0][0]
            odd = [display_path(p) for p, ds in members if (int(ds.Rows), int(ds.Columns)) != common]
            reason = (
                f"{label}: mixed image sizes {dict(sizes)} (Rows x Columns differ in {', '.join(odd[:3])})"
            )
            skipped.append(SkippedSeries(uid, folder, reason, True))
            continue
        if len(members) < 2:
            skipped.append(SkippedSeries(uid, folder, f"{label}: fewer than 2 slices"))
            continue
        try:
            info.files, info.slice_spacing = sort_slices(members, label)
        except SeriesError as err:
            skipped.append(SkippedSeries(uid, folder, str(err), True))
            continue
        by_path = dict(members)
        info.headers = [SliceHeader.of(by_path[f], offsets[f]) for f in info.files]
        series.append(info)
    skipped += [
        SkippedSeries("", b.path.parent, f"{display_path(b.path)} {b.reason}", True)
        for b in broken
        if b.path not in claimed
    ]
    return series, skipped


def _rescales_to_fractions(series: DicomSeries) -> bool:
    # the header pass kept the pixel module; a series built by hand has only its files
    ds = (
        series.headers[0].pixels
        if series.headers
        else pydicom.dcmread(series.files[0], stop_before_pixels=True, force=True)
    )
    return any(v != round(v) for v in rescale_of(ds))


def _itk_reason(err: RuntimeError) -> str:
    """The reader's own words from an ITK exception, without its source file and line."""
    text = str(err).strip()
    reason = text.rsplit("ITK ERROR:", 1)[-1].splitlines()[-1] if text else ""
    return re.sub(r"^\s*\w+\s*\(0x[0-9a-f]+\):\s*", "", reason).strip() or "the reader gave no reason"


def _declared_shape(series: DicomSeries) -> tuple[int, int, int]:
    """(slices, rows, columns) as the headers declare them (frames for a multi-frame file)."""
    ds = (
        series.headers[0].pixels
        if series.headers
        else pydicom.dcmread(series.files[0], stop_before_pixels=True, force=True)
    )
    slices = len(series.files) if len(series.files) > 1 else int(ds.get("NumberOfFrames", 1) or 1)
    return slices, int(ds.Rows), int(ds.Columns)


def _read_with_simpleitk(series: DicomSeries) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK/GDCM: compressed syntaxes, enhanced multi-frame and whatever pydicom's native path
    declines. Returns the (z, y, x) array and the LPS affine."""
    try:
        if len(series.files) == 1:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(series.files[0]))
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames([str(f) for f in series.files])
        if _rescales_to_fractions(series):
            # GDCM returns float64 for fractional slopes/intercepts: float32 holds 12-16-bit data
            # exactly and halves the memory of a large CT
            reader.SetOutputPixelType(sitk.sitkFloat32)
        image = reader.Execute()
    except RuntimeError as err:
        reason = compressed_size_mismatch(series.files) or _itk_reason(err)
        raise DataError(
            f"cannot decode series {series.name} in {display_path(series.files[0].parent)}: {reason}"
        ) from None
    array = sitk.GetArrayFromImage(image)  # (z, y, x), one copy
    direction, spacing, origin = image.GetDirection(), image.GetSpacing(), image.GetOrigin()
    del image  # from here on only the NumPy copy is held
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = np.array(direction).reshape(3, 3) * np.array(spacing)
    affine_lps[:3, 3] = origin
    return array, affine_lps


def read_series(series: DicomSeries, native: bool = True) -> nib.Nifti1Image:
    """Read a series into a NIfTI image with a RAS affine (values after RescaleSlope/Intercept).

    Args:
        series: from :func:`find_series` (files sorted along the slice normal).
        native: read uncompressed single-frame monochrome series with pydicom
            (:mod:`scseg.io.native_pixels`, 2-3x faster); ``False`` sends every series to SimpleITK.
    """
    what = f"series {series.name} in {display_path(series.files[0].parent)}"
    check_fits_in_memory(_declared_shape(series), 4, what)  # float32 for inference
    read = read_native_series(series.files, series.headers) if native else None
    array, affine_lps = read if read is not None else _read_with_simpleitk(series)
    if array.ndim != 3:
        raise DataError(f"{what}: expected a 3D scalar volume, got array shape {array.shape}")
    if len(series.files) > 1 and array.shape[0] != len(series.files):
        raise DataError(f"{what}: read {array.shape[0]} slices from {len(series.files)} files")
    affine_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps  # DICOM is LPS, NIfTI RAS
    # (x, y, z) as a Fortran-ordered view of the (z, y, x) array: nibabel stores F order, no copy
    return nib.Nifti1Image(array.transpose(2, 1, 0), affine_ras)
