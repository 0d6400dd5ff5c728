"""Read the pixels of an uncompressed single-frame series with pydicom, straight into one array.

Why not SimpleITK for these too: ``find_series`` has already parsed every header with pydicom, and
GDCM would parse them all again and hand back an image that must then be copied into NumPy, which
made loading 2-3x slower than SimpleITK's own series read (docs/benchmarks.md, "DICOM loading").
Here the header pass keeps, per file, the pixel module, the geometry and where the pixel data
element starts (:class:`SliceHeader`); the pixel pass seeks there, lets pydicom read that one element
and decode it (``pydicom.pixels.pixel_array``: byte order, BitsStored, signedness) and writes the
rescaled values into a preallocated (z, y, x) array. Each file is parsed once and nothing is copied
at full size. Anything else (compressed transfer syntaxes, multi-frame, colour, MONOCHROME1,
missing geometry, files that disagree on the pixel format) returns ``None`` and SimpleITK reads it.
The result matches SimpleITK's (GDCM's) in values, data type and geometry:
tests/io/test_native_pixels.py compares the two on every uncompressed series in the shared data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.pixels import pixel_array

GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient")
PIXEL_FORMAT = ("Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation")
# gdcm::Rescaler's best fit for integral rescales: the first of these that holds the rescaled range
INTEGER_TYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32]


@dataclass(frozen=True)
class SliceHeader:
    """What reading one slice's pixels needs from the header pass.

    Attributes:
        pixels: the pixel module (group 0028), the geometry and the file meta, without pixel data.
        offset: file position of the PixelData element (where ``stop_before_pixels`` stopped).
        encoding: (implicit VR, little endian) of the data set.
    """

    pixels: pydicom.Dataset
    offset: int
    encoding: tuple[bool, bool]

    @classmethod
    def of(cls, ds: pydicom.Dataset, offset: int) -> SliceHeader:
        """Keep the few elements needed from a header read with ``stop_before_pixels``."""
        small = pydicom.Dataset()
        for element in ds.group_dataset(0x0028):
            small.add(element)
        for keyword in GEOMETRY:
            if keyword in ds:
                small.add(ds[keyword])
        small.file_meta = ds.file_meta
        implicit, little = ds.original_encoding
        return cls(small, offset, (bool(implicit), bool(little)))


def rescale_of(ds: pydicom.Dataset) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept), (1, 0) where absent or blank."""
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    return (
        1.0 if slope in (None, "") else float(slope),
        0.0 if intercept in (None, "") else float(intercept),
    )


def rescaled_dtype(ds: pydicom.Dataset, rescales: list[tuple[float, float]]) -> np.dtype:
    """The data type GDCM gives the rescaled values of a series with ``ds``'s pixel format.

    No rescale: the stored type. Integral slopes and intercepts: the smallest integer type that holds
    every storable value rescaled. Any fractional one: float32 (GDCM says float64; float32 holds
    12-16-bit data exactly and halves the memory, as ``read_series`` also asks SimpleITK for).
    """
    bits, signed = int(ds.BitsStored), int(ds.PixelRepresentation) == 1
    if all(r == (1.0, 0.0) for r in rescales):
        return np.dtype(f"{'i' if signed else 'u'}{int(ds.BitsAllocated) // 8}")
    if any(v != round(v) for r in rescales for v in r):
        return np.dtype(np.float32)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    ends = [v * slope + intercept for slope, intercept in rescales for v in (low, high)]
    for candidate in INTEGER_TYPES:
        info = np.iinfo(candidate)
        if info.min <= min(ends) and max(ends) <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float64)


def _plain(ds: pydicom.Dataset) -> bool:
    """Uncompressed, single-frame, one-sample MONOCHROME2 with 8/16/32-bit words and full geometry."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    return (
        syntax is not None
        and not syntax.is_compressed
        and int(ds.get("SamplesPerPixel", 1)) == 1
        and int(ds.get("NumberOfFrames", 1) or 1) == 1
        and str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME2"
        and int(ds.get("BitsAllocated", 0)) in (8, 16, 32)
        and all(k in ds for k in ("PixelSpacing", *GEOMETRY))
    )


def _lps_affine(first: pydicom.Dataset, last: pydicom.Dataset, slices: int) -> np.ndarray:
    """Voxel (x, y, z) -> LPS mm, as ITK builds it: columns row, column and slice normal times their
    spacing, the slice spacing averaged over the stack (first to last position / (n - 1))."""
    orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    origin = np.array([float(v) for v in first.ImagePositionPatient])
    end = np.array([float(v) for v in last.ImagePositionPatient])
    step = float((end - origin) @ normal) / (slices - 1)
    pixel = [float(v) for v in first.PixelSpacing]  # (between rows, between columns)
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([row * pixel[1], col * pixel[0], normal * step])
    affine[:3, 3] = origin
    return affine


def _decode(path: Path, header: SliceHeader) -> np.ndarray:
    with open(path, "rb") as fp:
        fp.seek(header.offset)
        element = read_dataset(fp, *header.encoding)["PixelData"]
    ds = pydicom.Dataset(header.pixels)
    ds.file_meta = header.pixels.file_meta
    ds.add(element)
    return pixel_array(ds, view_only=True)


def read_native_series(files: list[Path], headers: list[SliceHeader]) -> tuple[np.ndarray, np.ndarray] | None:
    """The (z, y, x) rescaled pixel array and the LPS affine of a sorted single-frame series, or
    ``None`` when it is not plain uncompressed monochrome (then SimpleITK reads it)."""
    if len(files) < 2 or len(headers) != len(files):
        return None
    first = headers[0].pixels
    if not all(_plain(h.pixels) for h in headers) or any(
        h.pixels.get(k) != first.get(k) for h in headers for k in PIXEL_FORMAT
    ):
        return None
    rescales = [rescale_of(h.pixels) for h in headers]
    out = np.empty((len(files), int(first.Rows), int(first.Columns)), rescaled_dtype(first, rescales))
    for index, (path, header) in enumerate(zip(files, headers, strict=True)):
        try:
            pixels = _decode(path, header)
        except (InvalidDicomError, OSError, AttributeError, KeyError, ValueError, TypeError, EOFError):
            return None  # truncated or odd: SimpleITK decides, and words the error if it fails too
        slope, intercept = rescales[index]
        if slope == 1 and intercept == 0:
            out[index] = pixels
        elif out.dtype.kind == "f":
            out[index] = pixels * slope + intercept  # float64, rounded once, as GDCM then ITK do
        elif slope == 1:
            # in the output type, no temporaries: wrap-around integer arithmetic is exact modulo 2**bits,
            # and the result fits that type (rescaled_dtype), so it is the exact value (CT: HU = SV - 1024)
            np.add(pixels, int(intercept), out=out[index], dtype=out.dtype, casting="unsafe")
        else:
            out[index] = pixels.astype(np.int64) * int(slope) + int(intercept)
    return out, _lps_affine(first, headers[-1].pixels, len(files))
