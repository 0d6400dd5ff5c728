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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from scseg.errors import DataError
from scseg.io.native_pixels import SliceHeader, read_native_series, rescale_of

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


def sanitize(text: str) -> str:
    """Letters, digits, '-', '_' and '.'; anything else becomes '_' (safe as a file or folder name)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")
    return cleaned[:80] or "unnamed"


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _read_header(path: Path) -> tuple[pydicom.Dataset, int] | None:
    """The header without pixel data, and the file position where the pixel data element starts."""
    try:
        with open(path, "rb") as fp:
            # force: some exports omit the 128-byte preamble; files that are not DICOM at all then
            # come back without a SeriesInstanceUID (or raise) and are dropped by the caller
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            return ds, fp.tell()  # pydicom stops (rewound) at the start of the PixelData element
    except (
        InvalidDicomError,
        OSError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        EOFError,
    ):
        return None  # not DICOM (or unreadable): ignored, as a PACS export mixes in other files


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value)


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
        key = _text(ds, "SOPInstanceUID") or str(path)
        if key in best:
            keep, drop = sorted([best[key], (path, ds)], key=lambda m: m[0].stat().st_size, reverse=True)
            best[key] = keep
            dropped.append(drop[0])
        else:
            best[key] = (path, ds)
    return list(best.values()), dropped


def find_series(
    root: str | Path, exclude: list[Path] | None = None
) -> tuple[list[DicomSeries], list[SkippedSeries]]:
    """All readable image series under ``root`` (any depth, any file names; non-DICOM ignored).

    Args:
        root: a folder tree or one file.
        exclude: folders under ``root`` not to look into.

    Returns:
        The series (files sorted along the slice normal) and the skipped ones with their reason
        (localizers, non-image objects, fewer than 2 slices, bad geometry).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root} does not exist")
    groups: dict[str, list[tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    offsets: dict[Path, int] = {}
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    if exclude:
        paths = [p for p in paths if not any(p.is_relative_to(e) for e in exclude)]
    for path in paths:
        if is_nifti(path):
            continue  # never DICOM; reading a large one with force=True would only waste time
        header = _read_header(path)
        if header is None or not (_text(header[0], "SeriesInstanceUID") or "Rows" in header[0]):
            continue  # not DICOM, or DICOM that is neither part of a series nor an image
        ds, offsets[path] = header
        # some anonymised exports blank SeriesInstanceUID: fall back to folder + series number + description
        key = (
            _text(ds, "SeriesInstanceUID")
            or f"{path.parent}|{_text(ds, 'SeriesNumber')}|{_text(ds, 'SeriesDescription')}"
        )
        groups[key].append((path, ds))
    series, skipped = [], []
    for uid, found in groups.items():
        members, dropped = _unique_instances(found)
        first = members[0][1]
        folder = members[0][0].parent
        label = (
            f"series {_text(first, 'SeriesNumber') or '?'} '{_text(first, 'SeriesDescription')}' in {folder}"
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
        info = DicomSeries(
            uid,
            [],
            _text(first, "PatientID"),
            _text(first, "StudyInstanceUID"),
            _text(first, "SeriesNumber"),
            _text(first, "SeriesDescription"),
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
            skipped.append(SkippedSeries(uid, folder, f"{label}: mixed image sizes {dict(sizes)}", True))
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
    return series, skipped


def _rescales_to_fractions(series: DicomSeries) -> bool:
    # the header pass kept the pixel module; a series built by hand has only its files
    ds = (
        series.headers[0].pixels
        if series.headers
        else pydicom.dcmread(series.files[0], stop_before_pixels=True, force=True)
    )
    return any(v != round(v) for v in rescale_of(ds))


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
        raise DataError(f"cannot decode series {series.name} in {series.files[0].parent}: {err}") from None
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
    read = read_native_series(series.files, series.headers) if native else None
    array, affine_lps = read if read is not None else _read_with_simpleitk(series)
    if array.ndim != 3:
        raise DataError(f"series {series.name}: expected a 3D scalar volume, got array shape {array.shape}")
    affine_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps  # DICOM is LPS, NIfTI RAS
    # (x, y, z) as a Fortran-ordered view of the (z, y, x) array: nibabel stores F order, no copy
    return nib.Nifti1Image(array.transpose(2, 1, 0), affine_ras)
