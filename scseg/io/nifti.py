"""Open a NIfTI file that may be damaged: check it whole before anything is computed from it.

nibabel reads lazily and stops at the bytes it needs, so a ``.nii.gz`` whose gzip CRC is wrong
loads without complaint, and a short file fails late with an ``OSError`` or ``EOFError`` that
names no reason a user can act on. Here the header is read first and its declared size checked
against the voxel limit and the memory available; then the gzip stream is read to its end (Python's
gzip checks the CRC and length there), but never much past the size the header declares, so that a
gzip bomb (a few MB inflating to many GB) is refused after a bounded read. Nothing is allocated
before these checks pass.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from scseg.errors import DataError
from scseg.io.memory import check_fits_in_memory
from scseg.io.names import display_path

CHUNK = 1 << 24
# inflated bytes read past what the header declares before a file is called a gzip bomb: NIfTI has
# nothing after the image, but some writers pad
GZIP_SLACK = 1 << 26


def _gzip_size(path: Path, stop_after: int) -> int:
    """The decompressed size of a whole, undamaged gzip file, or a number above ``stop_after``
    once that many bytes have been inflated (the rest is not read).

    Raises:
        DataError: the CRC or length check fails, or the stream ends early.
    """
    size = 0
    try:
        with gzip.open(path, "rb") as stream:
            while size <= stop_after and (chunk := stream.read(CHUNK)):
                size += len(chunk)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        reason = "it ends early (a truncated copy?)" if isinstance(err, EOFError) else str(err)
        raise DataError(f"{display_path(path)}: the gzip data is damaged: {reason}") from None
    return size


def load_nifti(path: Path) -> nib.Nifti1Image:
    """``nib.load`` after checking the file is whole and its declared image fits in memory.

    Raises:
        DataError: a file that cannot be opened (permissions), not a NIfTI header, damaged gzip, a
            gzip bomb, less data than the header declares, more voxels than ``SCSEG_MAX_VOXELS``,
            an image larger than the available memory.
    """
    name = display_path(path)
    try:  # before the gzip check: a file the user may not read is not damaged
        with open(path, "rb"):
            pass
    except OSError as err:
        raise DataError(f"{name} cannot be read ({err.strerror or err})") from None
    gzipped = path.name.lower().endswith(".gz")
    try:
        image = nib.load(path)  # the header only: the data stays on disk
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError, zlib.error) as err:
        if gzipped:  # a damaged stream is the better reason, if that is what it is
            _gzip_size(path, stop_after=GZIP_SLACK)
        raise DataError(f"{name}: not a readable NIfTI file ({err})") from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise DataError(f"{name}: not a NIfTI image ({type(image).__name__})")
    check_fits_in_memory(image.shape, 4, name)  # float32 for inference
    header = image.header
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))  # 0 in some headers
    needed = offset + math.prod(image.shape) * np.dtype(header.get_data_dtype()).itemsize
    available = _gzip_size(path, stop_after=needed + GZIP_SLACK) if gzipped else path.stat().st_size
    if gzipped and available > needed + GZIP_SLACK:
        raise DataError(
            f"{name}: the gzip data inflates to more than {needed + GZIP_SLACK:,} bytes, but the header "
            f"declares an image of {needed:,} bytes with the header: a gzip bomb or a damaged header "
            "(refused after a bounded read)"
        )
    if needed > available:
        raise DataError(
            f"{name}: the header declares a {' x '.join(map(str, image.shape))} image "
            f"({header.get_data_dtype()}), {needed} bytes with the header, but the file holds {available}: "
            "a truncated copy?"
        )
    return image
