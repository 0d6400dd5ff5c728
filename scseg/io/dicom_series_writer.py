"""Write a 3D volume as a DICOM series (one file per slice) with pydicom."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


def write_dicom_series(
    volume: np.ndarray,
    affine_ras: np.ndarray,
    folder: str | Path,
    patient_id: str = "SCSEG-PHANTOM",
    series_description: str = "scseg phantom",
    modality: str = "MR",
) -> list[Path]:
    """Write ``volume`` (indexed [i, j, k] on an axis-aligned RAS grid) as axial DICOM slices.

    The voxel grid is kept exactly: column index = i (towards R), row index = j (towards A),
    slice = k (towards S), so that a DICOM reader returns the same world coordinates as the NIfTI
    with ``affine_ras``. Values are stored as int16 with a rescale slope chosen to keep precision.

    Args:
        volume: 3D array.
        affine_ras: 4x4 voxel-to-RAS affine with a diagonal (axis-aligned, positive) 3x3 part.
        folder: output folder (created).

    Returns:
        The written file paths, in slice order.
    """
    affine = np.asarray(affine_ras, dtype=float)
    spacing = np.diag(affine)[:3]
    if not np.allclose(affine[:3, :3], np.diag(spacing)) or (spacing <= 0).any():
        raise ValueError(
            f"write_dicom_series needs an axis-aligned RAS affine with positive spacing, got\n{affine}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vmin, vmax = float(volume.min()), float(volume.max())
    slope = max((vmax - vmin) / 30000.0, 1e-6)
    intercept = vmin
    stored = np.round((volume - intercept) / slope).astype(np.int16)
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    now = dt.datetime(2026, 1, 1, 12, 0, 0)
    origin_lps = np.array([-affine[0, 3], -affine[1, 3], affine[2, 3]])
    paths = []
    for k in range(volume.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"slice_{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PatientName, ds.PatientID, ds.Modality = patient_id, patient_id, modality
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = now.strftime("%H%M%S")
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = series_description, 1, k + 1
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        # columns run along +R (LPS -x), rows along +A (LPS -y), slices along +S
        ds.ImageOrientationPatient = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        ds.ImagePositionPatient = [float(v) for v in origin_lps + np.array([0.0, 0.0, k * spacing[2]])]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (between rows), column spacing
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.8g}", f"{intercept:.8g}"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        ds.save_as(ds.filename, enforce_file_format=True)
        paths.append(Path(ds.filename))
    return paths
