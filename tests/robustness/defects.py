"""Each class of damaged input, made from a real series of ``../shared/data``.

A defect edits a copy: the source data is never touched. ``position`` picks the slice (first,
middle, last of the series as sorted along its normal), because a reader that drops a broken end
slice still finds evenly spaced slices, and only a broken middle slice shows up as a gap.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import pydicom

from scseg.io.dicom_series import find_series

SERIES = {
    "mr_uncompressed": "dicom_mr_brain_tcia_btp/Study3/11_HCropVolume",  # 40 slices, read by pydicom
    "ct_jpeg2000": "dicom_ct_totalsegmentator/series",  # 20 slices, decoded by GDCM
}
POSITIONS = {"first": 0, "middle": None, "last": -1}
NIFTI = "msd_hippocampus_mri"


def copy_series(shared_data: Path, key: str, target: Path) -> list[Path]:
    """Copy a shared series to ``target``; its files in slice order."""
    shutil.copytree(shared_data / SERIES[key], target)
    (series,), _ = find_series(target)
    return series.files


def pick(files: list[Path], position: str) -> Path:
    index = POSITIONS[position]
    return files[len(files) // 2 if index is None else index]


def truncate_pixels(path: Path) -> None:
    """Cut the file inside its pixel data (an interrupted copy)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(data) // 3])


def truncate_header(path: Path) -> None:
    """Cut the file inside its header: pydicom then returns a partial data set without an error."""
    path.write_bytes(path.read_bytes()[:500])


def drop_pixel_data(path: Path) -> None:
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)


def contradict_rows(path: Path) -> None:
    """Rows that no longer match the pixel data (or the compressed image) of the file."""
    ds = pydicom.dcmread(path)
    ds.Rows = int(ds.Rows) // 2
    ds.save_as(path)


def declare_size(files: list[Path], size: int) -> None:
    """Rows = Columns = ``size`` in every file (a header error, or an impossible image)."""
    for path in files:
        ds = pydicom.dcmread(path)
        ds.Rows = ds.Columns = size
        ds.save_as(path)


DICOM_DEFECTS: dict[str, tuple[Callable[[Path], None], str]] = {
    # name: (edit, what the failure message must say after the file's name)
    "truncated_pixels": (truncate_pixels, "is truncated"),
    "truncated_header": (truncate_header, "is truncated"),
    "no_pixel_data": (drop_pixel_data, "has no pixel data"),
    "rows_contradict_pixels": (contradict_rows, "Rows x Columns"),
}


def a_nifti(shared_data: Path) -> Path:
    """The first image of the shared MSD hippocampus set (a real .nii.gz)."""
    return sorted((shared_data / NIFTI).rglob("*.nii.gz"))[0]


def damaged_niftis(source: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Damaged copies of a real ``.nii.gz``: name -> (file, what the message must say)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    raw = gzip.decompress(data)
    made = {
        # one flipped byte in the CRC-32 at the end: nibabel alone loads it without complaint
        "gzip_crc": ("crc.nii.gz", data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:], "CRC check failed"),
        "gzip_truncated": ("cut.nii.gz", data[: len(data) // 2], "ends early"),
        "nifti_truncated": ("cut.nii", raw[: len(raw) // 2], "a truncated copy"),
        "not_nifti": ("text.nii", b"not an image\n" * 40, "not a readable NIfTI"),
    }
    header = nib.load(source).header.copy()
    header.set_data_shape((4000, 4000, 4000))  # 238 GiB as float32
    made["size_beyond_memory"] = ("huge.nii", header.binaryblock + b"\0" * 4 + raw[352:], "memory")
    out = {}
    for name, (file_name, content, reason) in made.items():
        (folder / file_name).write_bytes(content)
        out[name] = (folder / file_name, reason)
    return out
