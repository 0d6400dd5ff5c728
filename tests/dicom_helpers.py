"""Shared helpers of the DICOM output tests: real series, synthetic segments, the independent
validators (dciodvfy, dcmqi) and a series with per-slice orientation noise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

# single-frame oblique MR, anonymised JPEG 2000 CT (blank UIDs), enhanced multi-frame MR without
# shared functional groups, a Philips series without FrameOfReferenceUID / SliceThickness, HFP
REAL_SERIES = [
    "dicom_mr_brain_tcia_btp/Study1/13_HCropVolume",
    "dicom_ct_totalsegmentator/series",
    "dicom2nifti_testdata/siemens_multiframe/anatomical/001",
    "dicom2nifti_testdata/philips/anatomical/001",
    "dicom_mr_brain_positions_dcm_qa_decubitus/HFP",
]
# structures with standard codes (SNOMED CT, with laterality): what the validators see in practice
NAMES = ["Left-Hippocampus", "Right-Putamen", "liver"]


def synthetic_segments(shape: tuple[int, ...]) -> np.ndarray:
    """Three asymmetric blocks (a flipped or transposed decode cannot match)."""
    x, y, z = shape
    seg = np.zeros(shape, dtype=np.uint16)
    seg[: x // 3, : y // 2, : max(1, z // 2)] = 1
    seg[x // 2 :, y // 4 : y // 2, z // 2 :] = 2
    seg[x // 4 : x // 2, y // 2 :, : max(1, z // 3)] = 3
    return seg


def validator(name: str) -> str:
    """An independent DICOM tool installed by the set-up (dev extra). Missing: skip, fail under CI."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        message = f"{name} is not installed (scripts/setup.sh installs dicom3tools and dcmqi)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires the validators: {message}")
        pytest.skip(message)
    return found


def dciodvfy_errors(path: Path) -> list[str]:
    """The lines dciodvfy reports as errors, and its warnings about coding schemes, except for a
    source series' local scheme that the SEG declares (copied study attributes, e.g. a SECTRA
    ProcedureCodeSequence: dciodvfy flags every scheme outside its list, declared or not)."""
    out = subprocess.run([validator("dciodvfy"), str(path)], capture_output=True, text=True, check=False)
    lines = (out.stdout + out.stderr).splitlines()
    declared = {
        str(item.CodingSchemeDesignator)
        for item in pydicom.dcmread(path, stop_before_pixels=True).get(
            "CodingSchemeIdentificationSequence", []
        )
        if "local scheme of the source" in str(item.get("CodingSchemeName", ""))
    }
    schemes = [
        line for line in lines
        if "Coding Scheme Designator" in line and not any(f"<{s}>" in line for s in declared)
    ]  # fmt: skip
    return [line for line in lines if line.startswith("Error")] + schemes


def dcmqi_segments(path: Path, like: nib.Nifti1Image, work: Path) -> np.ndarray:
    """dcmqi's decoding of a SEG (one NIfTI per segment, on the SEG frames' own grid), mapped onto
    ``like``'s voxel grid by world coordinates: segment numbers per voxel."""
    work.mkdir()
    subprocess.run(
        [validator("segimage2itkimage"), "--inputDICOM", str(path), "--outputDirectory", str(work),
         "--outputType", "nifti"],
        check=True, capture_output=True,
    )  # fmt: skip
    out = np.zeros(like.shape[:3], dtype=np.uint16)
    to_like = np.linalg.inv(like.affine)
    for file in work.glob("*.nii.gz"):
        segment = nib.load(file)
        ijk = np.argwhere(np.asanyarray(segment.dataobj) > 0)
        mapped = (to_like @ segment.affine @ np.c_[ijk, np.ones(len(ijk))].T)[:3].T
        index = np.rint(mapped).astype(int)
        assert np.abs(mapped - index).max() < 1e-2, f"{file.name}: dcmqi's grid is not the image's"
        out[tuple(index.T)] = int(file.name.split(".")[0])
    return out


def nudge_orientation(shared_data: Path, tmp_path: Path, delta: float) -> Path:
    """A copy of the oblique MR series whose every other slice's first direction cosine is off by
    ``delta`` (as scanners write per-slice values that differ in the last decimals)."""
    folder = tmp_path / f"nudged_{delta:g}"
    folder.mkdir()
    for index, file in enumerate(sorted((shared_data / REAL_SERIES[0]).iterdir())):
        ds = pydicom.dcmread(file)
        if index % 2:
            iop = [float(v) for v in ds.ImageOrientationPatient]
            iop[0] += delta
            ds.ImageOrientationPatient = [f"{v:.9f}" for v in iop]
        ds.save_as(folder / file.name)
    return folder
