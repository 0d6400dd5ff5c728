"""DICOM SEG output (highdicom): one segment per structure, referencing the source series' instances."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from scseg import __version__
from scseg.errors import DataError
from scseg.io.atomic import atomic_write_bytes
from scseg.io.dicom_series import DicomSeries
from scseg.labels.codes import (
    PRIVATE_SCHEME,
    PRIVATE_SCHEME_NAME,
    PRIVATE_SCHEME_ORGANIZATION,
    Code,
    SegmentCode,
    segment_codes,
)

# highdicom requires every source frame to share one orientation and one pixel spacing exactly;
# scanners store them per slice, and some differ in the last decimals (a GE double-oblique MR: in
# the 7th). Differences up to this are normalised (direction cosines: unitless; spacing: mm); more
# is a different grid, refused before inference.
SEG_GEOMETRY_TOLERANCE = 1e-4

# --seg-compression: lossless transfer syntaxes highdicom can encode a SEG in (RLE through pydicom,
# JPEG 2000 through pylibjpeg-openjpeg)
COMPRESSION = {
    "none": pydicom.uid.ExplicitVRLittleEndian,
    "rle": pydicom.uid.RLELossless,
    "jpeg2000": pydicom.uid.JPEG2000Lossless,
}
SEG_TYPES = ("binary", "fractional")

# coding schemes of DICOM PS3.16 Table 8-1 that scseg or its sources commonly use; any other
# designator in a SEG (scseg's private one, a site's local one copied from the source's study
# attributes) is declared in CodingSchemeIdentificationSequence
STANDARD_SCHEMES = {"DCM", "SCT", "SRT", "LN", "UCUM", "FMA", "RADLEX", "NCIt", "UMLS", "ACR", "I10", "ICD10"}


def _concept(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def _segment_descriptions(
    names: Sequence[str],
    colors: Sequence[tuple[int, int, int]],
    algorithm: str,
    structure_codes: Sequence[SegmentCode],
) -> list[hd.seg.SegmentDescription]:
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm[:64], family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    descriptions = []
    for number, (name, color, code) in enumerate(zip(names, colors, structure_codes, strict=True), start=1):
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name[:64],
            segmented_property_category=_concept(code.category),
            segmented_property_type=_concept(code.type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
            display_color=hd.color.CIELabColor.from_rgb(*color),
        )
        if code.modifier is not None:  # laterality / position: nested in the type item (PS3.3 C.8.20.2)
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                _concept(code.modifier)
            ]
        descriptions.append(description)
    return descriptions


def declare_coding_schemes(ds: pydicom.Dataset) -> list[str]:
    """Declare every non-standard coding scheme the dataset uses (CodingSchemeIdentificationSequence):
    scseg's private one by name, others as the source series' local schemes. Returns them."""
    used: set[str] = set()
    for element in ds.iterall():
        if element.keyword == "CodingSchemeDesignator" and element.value:
            used.add(str(element.value))
    declared = []
    for scheme in sorted(used - STANDARD_SCHEMES):
        item = pydicom.Dataset()
        item.CodingSchemeDesignator = scheme
        if scheme == PRIVATE_SCHEME:
            item.CodingSchemeName = PRIVATE_SCHEME_NAME
            item.CodingSchemeResponsibleOrganization = PRIVATE_SCHEME_ORGANIZATION
        else:
            item.CodingSchemeName = f"{scheme} (local scheme of the source images)"[:64]
        declared.append(item)
    if declared:
        ds.CodingSchemeIdentificationSequence = declared
    return [str(item.CodingSchemeDesignator) for item in declared]


# Type 2 attributes (required, may be empty) that highdicom copies from the source into the SEG;
# anonymised exports often delete them instead of emptying them
_TYPE2_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def _repair_character_set(ds: pydicom.Dataset) -> None:
    charset = ds.get("SpecificCharacterSet")
    if charset is None or isinstance(charset, pydicom.multival.MultiValue):
        return
    if not charset or charset == "ISO 2022 IR 6":
        del ds.SpecificCharacterSet  # empty / IR 6 mean the default repertoire; highdicom rejects ''
    elif charset.startswith("ISO 2022 IR "):
        # a code-extension term used alone (seen in vendor exports): its single-byte equivalent
        ds.SpecificCharacterSet = "ISO_IR " + charset.removeprefix("ISO 2022 IR ")


# patient and study attributes (groups 0008, 0010) are copied from the source into the SEG; a value
# invalid for its VR there (a Philips export's PatientAge "0Y") makes the SEG fail dciodvfy. UIDs
# are left alone (the SEG must reference them as they are), and so is geometry (group 0020)
_COPIED_GROUPS = (0x0008, 0x0010)


def _drop_invalid_values(ds: pydicom.Dataset, notes: set[str]) -> None:
    """Empty the copied attributes whose stored value is invalid for its VR (never guess a value)."""
    for elem in list(ds):
        if elem.tag.group not in _COPIED_GROUPS or elem.VR in ("SQ", "UI") or elem.value in (None, ""):
            continue
        values = elem.value if isinstance(elem.value, pydicom.multival.MultiValue) else [elem.value]
        try:
            for value in values:
                pydicom.valuerep.validate_value(elem.VR, value, pydicom.config.RAISE)
        except ValueError:
            elem.value = ""
            notes.add(f"{elem.keyword or elem.tag}: a value invalid for its VR ({elem.VR}) left empty")


def _share_frame_geometry(ds: pydicom.Dataset, notes: set[str]) -> None:
    """Enhanced multi-frame: highdicom reads pixel spacing and orientation from the shared functional
    groups; some exports keep them per frame only. Identical on every frame: move them to shared."""
    if "SharedFunctionalGroupsSequence" not in ds:
        ds.SharedFunctionalGroupsSequence = [pydicom.Dataset()]
    shared = ds.SharedFunctionalGroupsSequence[0]
    frames = ds.PerFrameFunctionalGroupsSequence
    for keyword in ("PixelMeasuresSequence", "PlaneOrientationSequence"):
        if keyword in shared or keyword not in frames[0]:
            continue
        if all(keyword in f and f[keyword].value == frames[0][keyword].value for f in frames):
            setattr(shared, keyword, frames[0][keyword].value)
            notes.add(f"per-frame {keyword} (the same on every frame) used as the shared one")


def _share_slice_geometry(sources: list[pydicom.Dataset], label: str, notes: set[str]) -> None:
    """One orientation and pixel spacing for all slices (the first slice's), within tolerance."""
    for keyword in ("ImageOrientationPatient", "PixelSpacing"):
        present = [ds for ds in sources if ds.get(keyword)]
        if len(present) < 2:
            continue
        try:
            values = np.array([[float(v) for v in ds[keyword].value] for ds in present])
        except (TypeError, ValueError):
            raise DataError(f"series {label}: unreadable {keyword} values in its slices") from None
        spread = float(np.abs(values - values[0]).max())
        if spread == 0.0:
            continue
        if spread > SEG_GEOMETRY_TOLERANCE:
            raise DataError(
                f"series {label}: {keyword} differs between its slices by up to {spread:.2g}, more than "
                f"the {SEG_GEOMETRY_TOLERANCE:g} a DICOM SEG can absorb (its frames share one "
                f"{keyword}); refused before inference. Resample it to one grid first (e.g. dcm2niix) "
                "and predict the NIfTI"
            )
        first = list(present[0][keyword].value)
        for ds in present:
            ds[keyword].value = first
        notes.add(f"{keyword} differences between slices (up to {spread:.1g}) normalised for the SEG")


def seg_source_headers(series: DicomSeries) -> tuple[list[pydicom.Dataset], list[str]]:
    """The series' headers, repaired in memory where anonymisation broke what a SEG must reference
    and with geometry noise below :data:`SEG_GEOMETRY_TOLERANCE` normalised.

    Returns:
        The headers (no pixel data) and a note per repair (reported in ``summary.csv``).

    Raises:
        DataError: slices whose orientation or pixel spacing differ beyond the tolerance (call this
            before inference, so such a series fails before the compute is spent).
    """
    sources = [pydicom.dcmread(f, stop_before_pixels=True, force=True) for f in series.files]
    notes: set[str] = set()
    # blank study / series UIDs (seen in anonymised exports): one UID per series, derived from its files
    folder_uid = {
        key: pydicom.uid.generate_uid(entropy_srcs=[key, *map(str, series.files)])
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
    }
    for ds in sources:
        meta = getattr(ds, "file_meta", None)
        for keyword, meta_keyword in (
            ("SOPClassUID", "MediaStorageSOPClassUID"),
            ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
        ):
            if not ds.get(keyword) and meta is not None and meta.get(meta_keyword):
                setattr(ds, keyword, meta[meta_keyword].value)
                notes.add(f"blank {keyword} taken from the file meta header")
        for keyword, uid in folder_uid.items():
            if not ds.get(keyword):
                setattr(ds, keyword, uid)
                notes.add(f"blank {keyword}: the SEG references a generated one")
        for keyword in _TYPE2_PATIENT_STUDY:
            if keyword not in ds:
                setattr(ds, keyword, "")
        _repair_character_set(ds)
        _drop_invalid_values(ds, notes)
        if "PerFrameFunctionalGroupsSequence" in ds:
            _share_frame_geometry(ds, notes)
        elif "PerFrameFunctionalGroupsSequence" not in ds and not ds.get("SliceThickness"):
            ds.SliceThickness = round(series.slice_spacing or 0.0, 6)  # SEG pixel measures need one
            notes.add("missing SliceThickness: the slice spacing is used")
    _share_slice_geometry(sources, series.name, notes)
    return sources, sorted(notes)


def segment_numbers(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Label values -> DICOM segment numbers 1..K (the order of the model's structures)."""
    lut = np.zeros(max(values) + 1, dtype=np.uint16)
    lut[list(values)] = np.arange(1, len(values) + 1)
    return lut[labels]


def write_dicom_seg(
    segments: np.ndarray,
    affine: np.ndarray,
    series: DicomSeries,
    names: Sequence[str],
    colors: Sequence[tuple[int, int, int]],
    path: Path,
    algorithm: str = "scseg",
    sources: tuple[list[pydicom.Dataset], list[str]] | None = None,
    compression: str = "none",
    structure_codes: Sequence[SegmentCode] | None = None,
) -> list[str]:
    """Write a DICOM SEG on ``series``' own voxel grid: BINARY from a label map, or FRACTIONAL
    (probabilities stored as 0..255) from per-structure probabilities.

    Args:
        segments: (X, Y, Z) segment numbers 1..len(names) (0 = background) on the series grid
            as :func:`scseg.io.dicom_series.read_series` returns it (x = column, y = row); or, for
            a FRACTIONAL SEG, (X, Y, Z, len(names)) float probabilities in [0, 1].
        affine: its RAS affine.
        series: the source series (its instances are referenced frame by frame).
        names: segment labels, segment number i -> ``names[i - 1]``.
        colors: RGB display colour per segment.
        path: output file; written to a temp file and renamed.
        algorithm: the algorithm name recorded in every segment.
        sources: what :func:`seg_source_headers` returned for ``series``, when the caller checked
            the series before inference (read again otherwise).
        compression: ``none``, ``rle`` or ``jpeg2000`` (lossless; see :data:`COMPRESSION`).
        structure_codes: what each segment is (the model's ``labels.codes``); default: mapped from
            ``names`` (:func:`scseg.labels.codes.segment_codes`).

    Returns:
        Notes on source headers repaired in memory (see :func:`seg_source_headers`).
    """
    headers, notes = sources if sources is not None else seg_source_headers(series)
    if not all(ds.get("SOPInstanceUID") for ds in headers):
        raise DataError(
            f"series {series.name}: instances without SOPInstanceUID cannot be referenced by a SEG"
        )
    fractional = segments.ndim == 4
    if fractional and segments.shape[3] != len(names):
        raise ValueError(f"{segments.shape[3]} probability volumes for {len(names)} segment names")
    # highdicom matches the volume's slices (axis 0) to the source frames by their positions, which
    # covers single-frame series and enhanced multi-frame files alike
    volume = hd.Volume(
        array=np.ascontiguousarray(segments.transpose(2, 1, 0, *range(3, segments.ndim))),
        affine=affine[:, [2, 1, 0, 3]],
        coordinate_system="PATIENT",
        frame_of_reference_uid=getattr(headers[0], "FrameOfReferenceUID", None),
        channels={"SegmentNumber": list(range(1, len(names) + 1))} if fractional else None,
        from_reference_convention="RAS",
    )
    first = headers[0]
    try:
        with warnings.catch_warnings():
            # highdicom warns about source values it copies as they are (e.g. single-component names)
            warnings.simplefilter("ignore", UserWarning)
            seg = hd.seg.Segmentation(
                source_images=headers,
                pixel_array=volume,
                segmentation_type=hd.seg.SegmentationTypeValues["FRACTIONAL" if fractional else "BINARY"],
                fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
                max_fractional_value=255,
                transfer_syntax_uid=COMPRESSION[compression],
                segment_descriptions=_segment_descriptions(
                    names, colors, algorithm, structure_codes or segment_codes(names)
                ),
                series_instance_uid=hd.UID(),
                series_number=int(getattr(first, "SeriesNumber", None) or 0) + 9000,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer="scseg",
                manufacturer_model_name=algorithm[:64],
                software_versions=__version__,
                device_serial_number="none",
                series_description=f"scseg {algorithm}"[:64],
            )
    except (ValueError, TypeError, AttributeError) as err:
        raise DataError(f"cannot build a DICOM SEG for series {series.name}: {err}") from None
    declare_coding_schemes(seg)
    atomic_write_bytes(path, lambda f: seg.save_as(f))
    return notes


def read_dicom_seg(path: str | Path, like: nib.Nifti1Image) -> np.ndarray:
    """Decode a DICOM SEG onto the grid of ``like``: segment numbers per voxel (0 = none) for a
    BINARY SEG; for a FRACTIONAL one, (X, Y, Z, segments) fractions in [0, 1].

    The SEG's voxel centres must coincide with ``like``'s up to axis order and direction (true
    for the SEGs :func:`write_dicom_seg` writes on a series grid); voxels outside the frames the
    SEG stores are 0.
    """
    seg = hd.seg.segread(path)
    fractional = seg.SegmentationType == "FRACTIONAL"
    volume = seg.get_volume(combine_segments=not fractional)
    seg_affine_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine
    # index map like -> SEG: a signed axis permutation plus an integer offset when the grids coincide
    mapping = np.linalg.solve(seg_affine_ras, like.affine)
    linear, offset = np.rint(mapping[:3, :3]), np.rint(mapping[:3, 3])
    if (
        np.abs(mapping[:3, :3] - linear).max() > 1e-3
        or np.abs(mapping[:3, 3] - offset).max() > 1e-2
        or not np.array_equal(np.abs(linear).sum(axis=0), np.ones(3))
    ):
        raise DataError(f"{path}: the SEG's voxel grid does not coincide with the reference image grid")
    seg_axis = np.abs(linear).argmax(axis=0)  # like axis a runs along SEG axis seg_axis[a]
    array = volume.array.transpose(*seg_axis, *range(3, volume.array.ndim))
    channels = array.shape[3:]
    out = np.zeros((*like.shape[:3], *channels), dtype=np.float32 if fractional else np.uint16)
    src, dst = [], []
    for a, n in enumerate(like.shape[:3]):
        index = linear[seg_axis[a], a] * np.arange(n) + offset[seg_axis[a]]
        valid = (index >= 0) & (index < array.shape[a])
        src.append(index[valid].astype(int))
        dst.append(np.flatnonzero(valid))
    out[np.ix_(*dst)] = array[np.ix_(*src)]
    return out
