"""DICOM series discovery and reading on the real series in ../shared/data."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from scseg.io.dicom_series import find_series, read_series

pytestmark = pytest.mark.data

# series folder -> reference NIfTI made by dcm2niix or dicom2nifti (see each SOURCE.md)
REFERENCES = {
    "dicom_mr_brain_tcia_btp/Study1/12-T1post-05670": "dicom_mr_brain_tcia_btp/reference_dcm2niix/Study1_12-T1post-05670.nii.gz",
    "dicom_mr_brain_tcia_btp/Study1/13_HCropVolume": "dicom_mr_brain_tcia_btp/reference_dcm2niix/Study1_13_HCropVolume.nii.gz",
    "dicom_mr_brain_tcia_btp/Study3/11-T1post-18670": "dicom_mr_brain_tcia_btp/reference_dcm2niix/Study3_11-T1post-18670.nii.gz",
    "dicom_mr_brain_tcia_btp/Study3/11_HCropVolume": "dicom_mr_brain_tcia_btp/reference_dcm2niix/Study3_11_HCropVolume.nii.gz",
    "dicom_mr_brain_tcia_btp/Study3/26401-T1prereg-52906": "dicom_mr_brain_tcia_btp/reference_dcm2niix/Study3_26401-T1prereg-52906.nii.gz",
    "dicom_mr_brain_tcia_btp/Study3/36468-FLAIRreg-58706": "dicom_mr_brain_tcia_btp/reference_dcm2niix/Study3_36468-FLAIRreg-58706.nii.gz",
    "dicom_mr_brain_tcia_btp/Study3/37830-T2reg-78532": "dicom_mr_brain_tcia_btp/reference_dcm2niix/Study3_37830-T2reg-78532.nii.gz",
    "dicom_mr_brain_positions_dcm_qa_decubitus/HFP/2_t1_fl2d_sag": "dicom_mr_brain_positions_dcm_qa_decubitus/reference_dcm2niix/HFP_t1_fl2d_sag_20220407151756.nii.gz",
    "dicom_mr_brain_positions_dcm_qa_decubitus/HFS/3_t1_fl2d_sag": "dicom_mr_brain_positions_dcm_qa_decubitus/reference_dcm2niix/HFS_t1_fl2d_sag_20220407150138.nii.gz",
    "dicom_ct_totalsegmentator/series": "dicom_ct_totalsegmentator/reference_dcm2niix/0_CT_Body_3.0.nii.gz",
    **{
        f"dicom2nifti_testdata/{v}/anatomical/{c}": f"dicom2nifti_testdata/{v}/anatomical/{c}_ground_truth.nii.gz"
        for v, c in [
            ("ge", "001"),
            ("generic", "001"),
            ("generic", "002_non_isotropic"),
            ("hitachi", "001"),
            ("philips", "001"),
            ("siemens", "001"),
            ("siemens_multiframe", "001"),
        ]
    },
}


def _voxel_centres(image: nib.Nifti1Image) -> np.ndarray:
    """World coordinates of the eight corner voxel centres (enough to pin down an affine grid)."""
    shape = np.array(image.shape[:3]) - 1
    corners = np.array([[i, j, k, 1] for i in (0, shape[0]) for j in (0, shape[1]) for k in (0, shape[2])])
    return (image.affine @ corners.T).T[:, :3]


@pytest.mark.parametrize("folder", sorted(REFERENCES))
def test_series_matches_its_reference_nifti(folder: str, shared_data: Path) -> None:
    series, skipped = find_series(shared_data / folder)
    assert len(series) == 1 and not skipped, skipped
    ours = nib.as_closest_canonical(read_series(series[0]))  # both reoriented to RAS
    reference = nib.as_closest_canonical(nib.load(shared_data / REFERENCES[folder]))
    assert ours.shape[:3] == reference.shape[:3]
    expected = reference.get_fdata().reshape(ours.shape)
    if np.issubdtype(ours.get_data_dtype(), np.integer):
        np.testing.assert_array_equal(ours.get_fdata(), expected)
    else:  # fractional rescale slope: read as float32 (7 significant digits), the reference in float64
        assert ours.get_data_dtype() == np.float32
        np.testing.assert_allclose(ours.get_fdata(), expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(_voxel_centres(ours), _voxel_centres(reference), atol=0.01)


def test_oblique_series_stays_oblique(shared_data: Path) -> None:
    series, _ = find_series(shared_data / "dicom_mr_brain_tcia_btp/Study1/12-T1post-05670")
    rotation = read_series(series[0]).affine[:3, :3]
    directions = rotation / np.linalg.norm(rotation, axis=0)
    assert np.abs(directions).max(axis=0).min() < 0.9999, "direction cosines kept, not snapped to the axes"


def test_gantry_tilt_is_refused_with_a_reason(shared_data: Path) -> None:
    series, skipped = find_series(shared_data / "dicom_ct_head_gantry_tilt_dcm_qa_ct/series_GE")
    assert not series and len(skipped) == 1
    assert "gantry tilt" in skipped[0].reason


def test_dicom_seg_objects_are_skipped_and_the_ct_is_kept(shared_data: Path) -> None:
    series, skipped = find_series(shared_data / "dicom_seg_dcmqi_ct3slice")
    assert [len(s.files) for s in series] == [3]
    assert len(skipped) == 2 and all("not an image series (SEG)" in s.reason for s in skipped)


def test_tree_with_other_files_two_series_in_one_folder_and_a_truncated_copy(
    shared_data: Path, tmp_path: Path
) -> None:
    mixed = tmp_path / "export" / "deeper"
    mixed.mkdir(parents=True)
    for folder in (
        "dicom_mr_brain_tcia_btp/Study1/13_HCropVolume",
        "dicom_mr_brain_tcia_btp/Study3/11_HCropVolume",
    ):
        for i, f in enumerate(sorted((shared_data / folder).iterdir())):
            shutil.copy(f, mixed / f"{Path(folder).parent.name}_{i:03d}")  # one folder, opaque names
    (tmp_path / "export" / "notes.txt").write_text("not DICOM")
    first = sorted((shared_data / "dicom_mr_brain_tcia_btp/Study1/13_HCropVolume").iterdir())[0]
    (mixed / "truncated_copy.dcm").write_bytes(first.read_bytes()[:2000])  # full header, cut pixel data
    series, skipped = find_series(tmp_path)
    assert not skipped
    assert sorted(len(s.files) for s in series) == [32, 40]
    assert any("repeated instance" in w for s in series for w in s.warnings)
    assert all(read_series(s).shape[2] == len(s.files) for s in series)


def test_empty_folder_has_no_series(tmp_path: Path) -> None:
    assert find_series(tmp_path) == ([], [])


def _jpeg_lossless_pixels(path: Path) -> pydicom.Dataset:
    """``path`` with its pixels re-encoded as JPEG Lossless (process 14, SV1) by SimpleITK/GDCM,
    grafted into the original header (pydicom has no encoder for this syntax)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    writer = sitk.ImageFileWriter()
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    with tempfile.TemporaryDirectory() as tmp:
        writer.SetFileName(str(Path(tmp) / "x.dcm"))
        writer.Execute(reader.Execute())
        encoded = pydicom.dcmread(Path(tmp) / "x.dcm")
    ds = pydicom.dcmread(path)
    assert encoded.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.PixelData = encoded.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless, JPEGLosslessSV1])
def test_compressed_transfer_syntaxes_read_like_uncompressed(
    shared_data: Path, tmp_path: Path, syntax
) -> None:
    (series,), _ = find_series(shared_data / "dicom_mr_brain_tcia_btp/Study3/11_HCropVolume")
    for path in series.files:
        if syntax == JPEGLosslessSV1:
            ds = _jpeg_lossless_pixels(path)
        else:
            ds = pydicom.dcmread(path)
            ds.compress(syntax)
        ds.save_as(tmp_path / path.name)
    (compressed,), _ = find_series(tmp_path)
    assert pydicom.dcmread(compressed.files[0]).file_meta.TransferSyntaxUID == syntax
    original, decoded = read_series(series), read_series(compressed)
    np.testing.assert_array_equal(decoded.get_fdata(), original.get_fdata())
    np.testing.assert_allclose(decoded.affine, original.affine)
