"""Check a declared image size against :data:`~scseg.limits.MAX_VOXELS` and the memory this
machine has, before allocating it."""

from __future__ import annotations

import math

import psutil

from scseg.errors import DataError
from scseg.limits import MAX_VOXELS

GIB = 1024**3


def check_fits_in_memory(shape: tuple[int, ...], bytes_per_voxel: int, what: str) -> None:
    """Refuse an image whose declared ``shape`` cannot be held (header values are hostile).

    Args:
        shape: the size the header declares.
        bytes_per_voxel: what one voxel will take once loaded (float32 for inference: 4).
        what: the file or series, for the message.

    Raises:
        DataError: a non-positive size, more voxels than ``SCSEG_MAX_VOXELS`` allows, or more bytes
            than the memory available now.
    """
    if any(int(s) <= 0 for s in shape):
        raise DataError(f"{what}: declares an image of size {tuple(shape)}; every size must be positive")
    size = " x ".join(str(int(s)) for s in shape)
    voxels = math.prod(int(s) for s in shape)
    if voxels > MAX_VOXELS.value():  # first: it fits in memory on a large machine, yet hangs it for minutes
        raise DataError(MAX_VOXELS.refusal(f"{what}: declares a {size} image", voxels))
    needed = voxels * bytes_per_voxel
    available = psutil.virtual_memory().available
    if needed > available:
        raise DataError(
            f"{what}: declares a {size} image, {needed / GIB:.1f} GiB once loaded, but only "
            f"{available / GIB:.1f} GiB of memory is available; a header error, or an image too large "
            "for this machine"
        )
