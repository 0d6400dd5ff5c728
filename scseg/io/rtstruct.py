"""RT Structure Set output: the label map as closed planar contours, for radiotherapy planning systems.

Neither highdicom nor pydicom writes RT structure sets, so the dataset is assembled here with
pydicom (PS3.3 A.19: Patient, General Study, RT Series, Frame of Reference, General Equipment,
Structure Set, ROI Contour, RT ROI Observations, SOP Common). Contours are the 0.5 iso-lines of each
structure's mask per slice (scikit-image's marching squares), so a polygon runs halfway between the
voxel centres inside and outside it: rasterising it back ("voxel centre inside the polygon") gives
the mask again, and the tests check that with rt-utils, an independent reader.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from skimage import measure

from scseg import __version__
from scseg.errors import DataError
from scseg.io.atomic import atomic_write_bytes
from scseg.io.dicom_seg import declare_coding_schemes
from scseg.io.dicom_series import DicomSeries
from scseg.labels.codes import Code, SegmentCode

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
# what the structure set copies from the images it outlines (same patient, same study)
_PATIENT_STUDY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
    "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "SpecificCharacterSet",
)  # fmt: skip
# slices farther than this (mm) from where the label map's grid puts them: not the same geometry
POSITION_TOLERANCE_MM = 0.01


def _code_item(code: Code) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code.value, code.scheme, code.meaning
    return item


def slice_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Closed contours (N, 2) in voxel indices of one slice's binary mask: the 0.5 iso-lines, which
    separate inside from outside voxel centres (padding closes contours at the image border)."""
    padded = np.pad(mask.astype(np.float32), 1)
    contours = []
    for contour in measure.find_contours(padded, 0.5):
        points = contour[:-1] - 1.0  # closed: the last point repeats the first; undo the padding
        if len(points) >= 3:
            contours.append(points)
    return contours


def check_rtstruct_sources(
    headers: Sequence[pydicom.Dataset], affine: np.ndarray, series: DicomSeries
) -> None:
    """What an RT structure set of this series needs, checked before inference: one single-frame
    instance per slice, each at the position of the label map's slice it outlines.

    Raises:
        DataError: with the reason.
    """
    if any("PerFrameFunctionalGroupsSequence" in ds for ds in headers):
        raise DataError(
            f"series {series.name}: an RT structure set references one single-frame image per slice; "
            "this is an enhanced multi-frame series (write a DICOM SEG instead: drop --rtstruct)"
        )
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    for k, ds in enumerate(headers):
        position = ds.get("ImagePositionPatient")
        expected = (lps @ [0.0, 0.0, k, 1.0])[:3]
        if (
            position is None
            or np.abs(np.asarray(position, dtype=float) - expected).max() > POSITION_TOLERANCE_MM
        ):
            raise DataError(
                f"series {series.name}: an RT structure set needs one single-frame image per slice at the "
                f"label map's slice positions; instance {k + 1} is at {position}, expected {expected.round(3).tolist()}"
            )


def write_rtstruct(
    labels: np.ndarray,
    affine: np.ndarray,
    series: DicomSeries,
    headers: Sequence[pydicom.Dataset],
    names: Sequence[str],
    colors: Sequence[tuple[int, int, int]],
    codes: Sequence[SegmentCode],
    path: Path,
    algorithm: str = "scseg",
) -> None:
    """Write ``rtstruct.dcm``: one ROI per structure, closed planar contours slice by slice.

    Args:
        labels: (X, Y, Z) segment numbers 1..len(names) (0 = background) on the series grid as
            :func:`scseg.io.dicom_series.read_series` returns it (x = column, y = row, z = sorted slice).
        affine: its RAS affine.
        series: the source series; ``headers``: its instances' headers in slice order
            (:func:`scseg.io.dicom_seg.seg_source_headers`).
        names, colors, codes: per structure (ROI name, display colour, identification code).
        path: output file; written to a temp file and renamed.
        algorithm: recorded as the ROIs' generation algorithm.

    Raises:
        DataError: an enhanced multi-frame series, or instances not at the label map's slice positions.
    """
    check_rtstruct_sources(headers, affine, series)
    if len(headers) != labels.shape[2]:
        raise DataError(f"series {series.name}: {len(headers)} instances for {labels.shape[2]} slices")
    first = headers[0]
    frame_uid = str(first.get("FrameOfReferenceUID") or pydicom.uid.generate_uid())
    now = dt.datetime.now()
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = RT_STRUCTURE_SET_STORAGE, ds.file_meta.MediaStorageSOPInstanceUID
    for keyword in _PATIENT_STUDY:
        setattr(ds, keyword, first.get(keyword, ""))
    if not ds.SpecificCharacterSet:
        del ds.SpecificCharacterSet
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesNumber = int(getattr(first, "SeriesNumber", None) or 0) + 9500
    ds.SeriesDescription = f"scseg {algorithm}"[:64]
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.OperatorsName = ""  # Type 2 in the RT Series module
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = "scseg", algorithm[:64], __version__
    ds.StructureSetLabel = "scseg"
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.StructureSetDate, ds.StructureSetTime

    images = []
    for header in headers:
        image = pydicom.Dataset()
        image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID = (
            header.SOPClassUID,
            header.SOPInstanceUID,
        )
        images.append(image)
    referenced_series = pydicom.Dataset()
    referenced_series.SeriesInstanceUID = first.SeriesInstanceUID
    referenced_series.ContourImageSequence = DicomSequence(images)
    study = pydicom.Dataset()
    study.ReferencedSOPClassUID = (
        "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (as RT systems expect)
    )
    study.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    study.RTReferencedSeriesSequence = [referenced_series]
    frame = pydicom.Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]

    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    rois, contours_, observations = [], [], []
    for number, (name, color, code) in enumerate(zip(names, colors, codes, strict=True), start=1):
        roi = pydicom.Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, frame_uid
        roi.ROIName, roi.ROIGenerationAlgorithm = name[:64], "AUTOMATIC"
        roi.ROIGenerationDescription = algorithm[:64]
        rois.append(roi)
        planes = []
        for k in range(labels.shape[2]):
            for points in slice_contours(labels[:, :, k] == number):
                voxels = np.c_[points, np.full(len(points), k), np.ones(len(points))]
                item = pydicom.Dataset()
                reference = pydicom.Dataset()
                reference.ReferencedSOPClassUID = headers[k].SOPClassUID
                reference.ReferencedSOPInstanceUID = headers[k].SOPInstanceUID
                item.ContourImageSequence = [reference]
                item.ContourGeometricType = "CLOSED_PLANAR"
                item.NumberOfContourPoints = len(points)
                item.ContourData = [f"{v:.4f}" for v in (lps @ voxels.T)[:3].T.ravel()]
                planes.append(item)
        contour = pydicom.Dataset()
        contour.ROIDisplayColor = list(color)
        contour.ReferencedROINumber = number
        if planes:  # Type 2 in spirit: an ROI the model did not find has no contours
            contour.ContourSequence = DicomSequence(planes)
        contours_.append(contour)
        observation = pydicom.Dataset()
        observation.ObservationNumber, observation.ReferencedROINumber = number, number
        observation.RTROIInterpretedType, observation.ROIInterpreter = "ORGAN", ""
        observation.RTROIIdentificationCodeSequence = [_code_item(code.type)]  # laterality: in ROIName
        observations.append(observation)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours_)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"  # an automatic result: a clinician reviews it
    declare_coding_schemes(ds)
    atomic_write_bytes(path, lambda f: ds.save_as(f, enforce_file_format=True))
