"""Open a NIfTI file that may be damaged: check it whole before anything is computed from it.

nibabel reads lazily and stops at the bytes it needs, so a ``.nii.gz`` whose gzip CRC is wrong
loads without complaint, and a short file fails late with an ``OSError`` or ``EOFError`` that
names no reason a user can act on. Here the gzip stream is read to its end (Python's gzip checks
the CRC and length there) and the declared size is compared with the data present and with the
memory available, before any array is allocated.
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


def _gzip_size(path: Path) -> int:
    """The decompressed size of a whole, undamaged gzip file.

    Raises:
        DataError: the CRC or length check fails, or the stream ends early.
    """
    size = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        reason = "it ends early (a truncated copy?)" if isinstance(err, EOFError) else str(err)
        raise DataError(f"{display_path(path)}: the gzip data is damaged: {reason}") from None
    return size


def load_nifti(path: Path) -> nib.Nifti1Image:
    """``nib.load`` after checking the file is whole and its declared image fits in memory.

    Raises:
        DataError: a file that cannot be opened (permissions), not a NIfTI header, damaged gzip, less data than the header declares, an image
            larger than the available memory.
    """
    name = display_path(path)
    try:  # before the gzip check: a file the user may not read is not damaged
        with open(path, "rb"):
            pass
    except OSError as err:
        raise DataError(f"{name} cannot be read ({err.strerror or err})") from None
    gzipped = path.name.lower().endswith(".gz")
    available = _gzip_size(path) if gzipped else path.stat().st_size
    try:
        image = nib.load(path)
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError) as err:
        raise DataError(f"{name}: not a readable NIfTI file ({err})") from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise DataError(f"{name}: not a NIfTI image ({type(image).__name__})")
    check_fits_in_memory(image.shape, 4, name)  # float32 for inference
    header = image.header
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))  # 0 in some headers
    needed = offset + math.prod(image.shape) * np.dtype(header.get_data_dtype()).itemsize
    if needed > available:
        raise DataError(
            f"{name}: the header declares a {' x '.join(map(str, image.shape))} image "
            f"({header.get_data_dtype()}), {needed} bytes with the header, but the file holds {available}: "
            "a truncated copy?"
        )
    return image
