"""Read the headers of a DICOM tree and check each file before any pixel is read: a file that cannot be parsed, pixel
data that is missing, truncated or does not match Rows x Columns. Each is named with its file, so a
series is never read as a shorter volume or decoded into a reader's error about something else
(GDCM says "no ImageIO reader" for missing pixel data, "uneven spacing" follows a dropped slice).

Cheap by design: the header pass already stopped at the pixel data element; here only that
element's header is read (``defer_size``), plus, for compressed data, its items up to the end.
"""

from __future__ import annotations

import re
import struct
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.filereader import data_element_generator
from pydicom.pixels.utils import _get_jpg_parameters

from scseg.io.names import display_path

PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}  # float, double float, integer pixel data
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0, little endian
# (0020,000E) SeriesInstanceUID: explicit VR "UI" + 2-byte length, or implicit + 4-byte length
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # a media directory: DICOM, but no series
HEAD_BYTES = 65536  # read raw to tell broken DICOM from other files
HEADER_ERRORS = (
    InvalidDicomError,
    OSError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    EOFError,
)
_SERIES_UID = re.compile(rb"\x20\x00\x0e\x00(?:UI(.{2})|(.{4}))", re.DOTALL)


def looks_like_dicom(path: Path, head: bytes) -> bool:
    """The DICOM file signature (``DICM`` after the 128-byte preamble) or a ``.dcm`` name."""
    return head[128:132] == b"DICM" or path.name.lower().endswith(".dcm")


def series_uid_in(head: bytes) -> str | None:
    """The SeriesInstanceUID found in the raw bytes of a file pydicom could not parse, if any.

    Why by hand: a truncated header makes pydicom raise before returning anything, but the UID is
    usually in the part that is there; it says which series lost a slice, so one broken file in a
    flat PACS export fails only its own series.
    """
    for match in _SERIES_UID.finditer(head):
        raw_length = match.group(1) or match.group(2)
        length = struct.unpack("<H" if match.group(1) else "<I", raw_length)[0]
        if 0 < length <= 64:
            start = match.end()
            value = head[start : start + length].rstrip(b"\x00 ").decode("ascii", "replace")
            if re.fullmatch(r"[0-9]+(\.[0-9]+)+", value):
                return value
    return None


def _expected_bytes(ds: pydicom.Dataset) -> int:
    rows, columns = int(ds.Rows), int(ds.Columns)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    return (rows * columns * frames * samples * bits + 7) // 8


def pixel_data_problem(path: Path, ds: pydicom.Dataset, offset: int) -> str | None:
    """Why the pixel data of ``path`` cannot be what its header says, or ``None`` when it can.

    Args:
        path: the file.
        ds: its header, read with ``stop_before_pixels``.
        offset: where that read stopped (the pixel data element, if any).
    """
    name = display_path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about what is checked here
            fp.seek(offset)
            implicit, little = ds.original_encoding
            element = next(data_element_generator(fp, implicit, little, defer_size=256), None)
            end = fp.tell()
            if element is None or element.tag not in PIXEL_TAGS:
                return f"{name} has no pixel data (PixelData is missing)"
            tail = b""
            if element.length == 0xFFFFFFFF and end <= size:
                fp.seek(max(end - 8, 0))
                tail = fp.read(8)
    except EOFError as err:
        return f"{name} is truncated: its pixel data ends early ({err})"
    except (OSError, ValueError, struct.error, KeyError, TypeError, NotImplementedError) as err:
        return f"{name}: its pixel data cannot be read ({err})"
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if element.length == 0xFFFFFFFF:  # encapsulated (compressed): items up to a sequence delimiter
        if end > size or tail != SEQUENCE_DELIMITER:
            return f"{name} is truncated: its compressed pixel data has no end"
        return None
    if end > size:
        return f"{name} is truncated: the file ends {end - size} bytes before its pixel data does"
    if syntax is not None and syntax.is_compressed:
        return None  # a compressed syntax with defined length: the codec checks the stream
    expected = _expected_bytes(ds)
    if element.length not in (expected, expected + 1):  # + 1: padding to an even length
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        return (
            f"{name}: Rows x Columns {int(ds.Rows)} x {int(ds.Columns)}"
            f"{f' x {frames} frames' if frames > 1 else ''} at {int(ds.get('BitsAllocated', 16))} bits "
            f"needs {expected} bytes of pixel data, but PixelData holds {element.length}"
        )
    return None


def _codestream_size(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG or JPEG 2000 frame encodes, when its header says so.

    Why by hand for JPEG 2000: pydicom's ``get_j2k_parameters`` reports precision and sign only;
    the SIZ marker segment right after the start of codestream holds the image size.
    """
    if frame[:4] == b"\xff\x4f\xff\x51" and len(frame) >= 24:  # SOC, SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz
        x, y, x0, y0 = struct.unpack(">4I", frame[8:24])
        return y - y0, x - x0
    if frame[:2] == b"\xff\xd8":
        params = _get_jpg_parameters(frame)
        if "height" in params and "width" in params:
            return int(params["height"]), int(params["width"])
    return None


def compressed_size_mismatch(files: list[Path]) -> str | None:
    """The first file whose compressed image size contradicts its Rows / Columns (read only after a
    codec failed, to name the culprit instead of the codec's own words)."""
    for path in files:
        try:
            ds = pydicom.dcmread(path, force=True)
            frame = next(
                generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1))
            )
        except (OSError, ValueError, EOFError, KeyError, AttributeError, StopIteration, TypeError):
            continue
        size = _codestream_size(frame)
        if size is not None and size != (int(ds.Rows), int(ds.Columns)):
            return (
                f"{display_path(path)}: Rows x Columns {int(ds.Rows)} x {int(ds.Columns)}, but its "
                f"compressed pixel data holds a {size[0]} x {size[1]} image"
            )
    return None


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def text_of(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value)


@dataclass
class BrokenFile:
    """A file that looks like DICOM (or could not be opened) but whose header cannot be read."""

    path: Path
    reason: str
    series_uid: str | None = None  # when it could still be found in the raw bytes


def read_header(path: Path) -> tuple[pydicom.Dataset, int] | BrokenFile | None:
    """The header without pixel data and the file position where the pixel data element starts;
    a :class:`BrokenFile` for DICOM that cannot be read; ``None`` for files that are not DICOM."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(HEAD_BYTES)
            fp.seek(0)
            try:
                # force: some exports omit the 128-byte preamble; files that are not DICOM at all
                # then come back without a SeriesInstanceUID (or raise) and are dropped by the caller
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                offset = fp.tell()  # pydicom stops (rewound) at the start of the PixelData element
            except HEADER_ERRORS as err:
                if looks_like_dicom(path, head):
                    return BrokenFile(path, f"is not readable DICOM ({err})", series_uid_in(head))
                return None  # not DICOM: ignored, as a PACS export mixes in other files
    except OSError as err:
        return BrokenFile(path, f"cannot be read ({err.strerror or err})")
    media = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if "SeriesInstanceUID" not in ds and looks_like_dicom(path, head) and media != DICOMDIR_SOP_CLASS:
        # pydicom returns what it read up to the end of a truncated file, without an error
        return BrokenFile(path, "is truncated: its header ends before SeriesInstanceUID", series_uid_in(head))
    return ds, offset


def group_headers(
    paths: list[Path],
) -> tuple[dict[str, list[tuple[Path, pydicom.Dataset]]], dict[Path, int], list[BrokenFile]]:
    """Headers grouped by series, pixel data offsets, and the DICOM files that cannot be read."""
    groups: dict[str, list[tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    offsets: dict[Path, int] = {}
    broken: list[BrokenFile] = []
    for path in paths:
        if is_nifti(path):
            continue  # never DICOM; reading a large one with force=True would only waste time
        header = read_header(path)
        if isinstance(header, BrokenFile):
            broken.append(header)
            continue
        if header is None or not (text_of(header[0], "SeriesInstanceUID") or "Rows" in header[0]):
            continue  # not DICOM, or DICOM that is neither part of a series nor an image
        ds, offsets[path] = header
        # some anonymised exports blank SeriesInstanceUID: fall back to folder + series number + description
        key = (
            text_of(ds, "SeriesInstanceUID")
            or f"{path.parent}|{text_of(ds, 'SeriesNumber')}|{text_of(ds, 'SeriesDescription')}"
        )
        groups[key].append((path, ds))
    return groups, offsets, broken


def file_problems(
    uid: str, members: list[tuple[Path, pydicom.Dataset]], offsets: dict[Path, int], broken: list[BrokenFile]
) -> list[str]:
    """What is wrong with the files of one image series: any of them, or an unreadable DICOM file
    that belongs to it (its UID says so, or it lies in a folder of the series and has no UID)."""
    problems = [
        f"{display_path(p)} has no Rows / Columns (a truncated header?)"
        for p, ds in members
        if "Rows" not in ds
    ]
    problems += [
        problem
        for path, ds in members
        if "Rows" in ds and (problem := pixel_data_problem(path, ds, offsets[path])) is not None
    ]
    folders = {p.parent for p, _ in members}
    problems += [
        f"{display_path(b.path)} {b.reason}; a slice may be missing"
        for b in broken
        if b.series_uid == uid or (b.series_uid is None and b.path.parent in folders)
    ]
    return problems
