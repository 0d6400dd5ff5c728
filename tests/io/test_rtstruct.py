"""RT structure sets on real series: rasterised back by rt-utils (an independent reader), they give
the label map within one voxel on the boundary; dciodvfy finds no errors and no unknown schemes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage
from skimage import draw

from scseg.errors import DataError
from scseg.io.dicom_seg import seg_source_headers
from scseg.io.dicom_series import find_series, read_series
from scseg.io.reports import structure_colors
from scseg.io.rtstruct import slice_contours, write_rtstruct
from scseg.labels.codes import segment_codes
from tests.dicom_helpers import NAMES, REAL_SERIES, dciodvfy_errors, synthetic_segments

rt_utils = pytest.importorskip("rt_utils", reason="rt-utils is installed by scripts/setup.sh (dev)")

SINGLE_FRAME = [s for s in REAL_SERIES if "multiframe" not in s]


def _with_a_ring(segments: np.ndarray) -> np.ndarray:
    """Add a ring (a structure with a hole) to structure 1 where the slices are large enough."""
    x, y, _ = segments.shape
    i, j = np.ogrid[:x, :y]
    r = np.hypot(i - 0.7 * x, j - 0.75 * y)
    ring = (r < min(x, y) / 6) & (r > min(x, y) / 12)
    out = segments.copy()
    out[..., -1][ring] = 1
    return out


def rasterise(ds: pydicom.Dataset, affine: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Our independent reading of the contours: patient mm -> voxel indices through the image's
    affine, then voxel centres inside each polygon (even-odd, so holes stay holes)."""
    to_index = np.linalg.inv(np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine)
    masks = []
    for roi in ds.ROIContourSequence:
        mask = np.zeros(shape, bool)
        for item in roi.get("ContourSequence", []):
            points = np.asarray(item.ContourData, dtype=float).reshape(-1, 3)
            index = (to_index @ np.c_[points, np.ones(len(points))].T)[:3].T
            k = int(np.rint(index[0, 2]))
            assert np.abs(index[:, 2] - k).max() < 1e-3, "a contour off its slice"
            rows, cols = draw.polygon(index[:, 0], index[:, 1], shape[:2])
            inside = np.zeros(shape[:2], bool)
            inside[rows, cols] = True
            mask[:, :, k] ^= inside
        masks.append(mask)
    return masks


def _rt_utils_masks(series: object, path: Path, headers: list, tmp_path: Path) -> list[np.ndarray]:
    folder = tmp_path / "series"  # rt-utils reads every file of a folder: the series alone
    folder.mkdir()
    for file in series.files:  # with the blank SOPInstanceUIDs of anonymised exports repaired, as we do
        ds = pydicom.dcmread(file)
        if not ds.get("SOPInstanceUID"):
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.save_as(folder / file.name)
    rtstruct = rt_utils.RTStructBuilder.create_from(dicom_series_path=str(folder), rt_struct_path=str(path))
    # rt-utils' slices: sorted along the normal; ours: the series' order. Match them by instance.
    slice_of = {ds.SOPInstanceUID: k for k, ds in enumerate(headers)}
    order = np.argsort([slice_of[ds.SOPInstanceUID] for ds in rtstruct.series_data])
    return [
        rtstruct.get_roi_mask_by_name(name).transpose(1, 0, 2)[:, :, order]
        for name in rtstruct.get_roi_names()
    ]


def _assert_within_a_voxel_of_the_boundary(mask: np.ndarray, expected: np.ndarray, what: str) -> None:
    boundary = np.zeros_like(expected)
    for k in range(expected.shape[2]):  # in-plane: the voxels on the structure's edge
        plane = expected[:, :, k]
        boundary[:, :, k] = ndimage.binary_dilation(plane) & ~ndimage.binary_erosion(plane)
    near = ndimage.binary_dilation(boundary, structure=np.ones((3, 3, 1), bool))
    assert not ((mask != expected) & ~near).any(), (
        f"{what}: voxels off by more than one voxel from the boundary"
    )
    dice = 2 * (mask & expected).sum() / max(1, mask.sum() + expected.sum())
    assert dice > 0.9, f"{what}: Dice {dice:.3f}"


def test_contours_separate_inside_from_outside_voxel_centres() -> None:
    mask = np.zeros((9, 8), bool)
    mask[2:7, 1:6] = True
    mask[4, 3] = False  # a hole
    contours = slice_contours(mask)
    assert len(contours) == 2
    outer = max(contours, key=len)
    assert outer[:, 0].min() == pytest.approx(1.5) and outer[:, 0].max() == pytest.approx(6.5)
    assert outer[:, 1].min() == pytest.approx(0.5) and outer[:, 1].max() == pytest.approx(5.5)


@pytest.mark.data
@pytest.mark.parametrize("relative", SINGLE_FRAME)
def test_rtstruct_rasterises_back_to_the_label_map(shared_data: Path, relative: str, tmp_path: Path) -> None:
    (series,), _ = find_series(shared_data / relative)
    image = read_series(series)
    segments = _with_a_ring(synthetic_segments(image.shape))
    headers, _ = seg_source_headers(series)
    path = tmp_path / "rtstruct.dcm"
    write_rtstruct(
        segments, image.affine, series, headers, NAMES, structure_colors(3), segment_codes(NAMES), path
    )

    assert dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    assert [roi.ROIName for roi in ds.StructureSetROISequence] == NAMES
    ours = rasterise(ds, image.affine, image.shape)
    theirs = _rt_utils_masks(series, path, headers, tmp_path) if image.shape[0] == image.shape[1] else None
    for number, name in enumerate(NAMES):
        expected = segments == number + 1
        _assert_within_a_voxel_of_the_boundary(ours[number], expected, f"{name} (our rasteriser)")
        if theirs is not None:  # rt-utils' masks are (Columns, Rows): right for square images only
            _assert_within_a_voxel_of_the_boundary(theirs[number], expected, f"{name} (rt-utils)")
    codes = [item.RTROIIdentificationCodeSequence[0].CodeValue for item in ds.RTROIObservationsSequence]
    assert codes == [c.type.value for c in segment_codes(NAMES)]
    assert ds.ApprovalStatus == "UNAPPROVED" and ds.StudyInstanceUID == headers[0].StudyInstanceUID


@pytest.mark.data
def test_a_multi_frame_series_is_refused_with_the_reason(shared_data: Path, tmp_path: Path) -> None:
    (series,), _ = find_series(shared_data / "dicom2nifti_testdata/siemens_multiframe/anatomical/001")
    image = read_series(series)
    headers, _ = seg_source_headers(series)
    with pytest.raises(DataError, match="single-frame"):
        write_rtstruct(
            np.zeros(image.shape, np.uint8), image.affine, series, headers, ["a"], [(1, 2, 3)],
            segment_codes(["a"]), tmp_path / "rt.dcm",
        )  # fmt: skip
    assert not list(tmp_path.iterdir())
