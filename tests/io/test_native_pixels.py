"""pydicom's native read path gives what SimpleITK gives: values, data type and geometry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import pixel_array
from pydicom.uid import RLELossless

from scseg.io.dicom_series import find_series, read_series
from scseg.io.native_pixels import read_native_series

pytestmark = pytest.mark.data

MR = "dicom_mr_brain_tcia_btp/Study3/11_HCropVolume"  # signed 16-bit, no rescale
CT = "dicom_seg_dcmqi_ct3slice/ct-3slice"  # signed 16-bit, intercept -1024


def _assert_same_image(ours, reference) -> None:
    assert ours.get_data_dtype() == reference.get_data_dtype()
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(reference.dataobj))
    np.testing.assert_allclose(ours.affine, reference.affine, atol=1e-4)


def test_every_uncompressed_shared_series_reads_as_with_simpleitk(shared_data: Path) -> None:
    series, _ = find_series(shared_data)
    native = [s for s in series if read_native_series(s.files, s.headers) is not None]
    # the MR brain, decubitus and vendor series are uncompressed single-frame; the JPEG 2000 CT and
    # the enhanced multi-frame MR must be declined (SimpleITK reads them)
    assert len(native) >= 14, [str(s.files[0].parent) for s in native]
    declined = {str(s.files[0].parent.relative_to(shared_data)) for s in series if s not in native}
    assert {
        "dicom_ct_totalsegmentator/series",
        "dicom2nifti_testdata/siemens_multiframe/anatomical/001",
    } <= declined
    dtypes = set()
    for s in native:
        ours = read_series(s)
        _assert_same_image(ours, read_series(s, native=False))
        dtypes.add(ours.get_data_dtype().name)
    assert {"uint16", "int16", "int32", "float32"} <= dtypes  # every rescale policy was compared


def _variant(shared_data: Path, folder: str, tmp_path: Path, edit: Callable[[pydicom.Dataset, int], None]):
    """The series in ``folder`` rewritten with ``edit(dataset, slice_index)`` applied to every file."""
    (series,), _ = find_series(shared_data / folder)
    for index, path in enumerate(series.files):
        ds = pydicom.dcmread(path)
        edit(ds, index)
        ds.save_as(tmp_path / path.name)
    (variant,), _ = find_series(tmp_path)
    return variant


def _unsigned_12_bit(ds: pydicom.Dataset, index: int) -> None:
    """A typical CT: unsigned 12-bit stored values, HU = value - 1024."""
    values = ds.pixel_array.astype(np.int32) + 1024
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
    ds.PixelData = np.clip(values, 0, 4095).astype(np.uint16).tobytes()


def _fractional_per_slice(ds: pydicom.Dataset, index: int) -> None:
    """PET-like: a different fractional slope on every slice."""
    ds.RescaleSlope, ds.RescaleIntercept = f"{0.25 + 0.125 * index:.4f}", "-3.5"


@pytest.mark.parametrize(
    ("folder", "edit", "dtype"),
    [
        (CT, _unsigned_12_bit, "int16"),
        (CT, _fractional_per_slice, "float32"),
        (MR, _fractional_per_slice, "float32"),
    ],
)
def test_rescale_variants_read_as_with_simpleitk(
    shared_data: Path, tmp_path: Path, folder, edit, dtype
) -> None:
    series = _variant(shared_data, folder, tmp_path, edit)
    assert read_native_series(series.files, series.headers) is not None
    ours = read_series(series)
    assert ours.get_data_dtype() == dtype
    _assert_same_image(ours, read_series(series, native=False))


def test_a_later_slice_with_a_fractional_slope_widens_the_whole_volume(
    shared_data: Path, tmp_path: Path
) -> None:
    def later_fractional(ds: pydicom.Dataset, index: int) -> None:
        if index > 0:
            ds.RescaleSlope = "0.5"

    series = _variant(shared_data, CT, tmp_path, later_fractional)
    array, _ = read_native_series(series.files, series.headers)
    assert array.dtype == np.float32
    for index, path in enumerate(series.files):
        expected = pixel_array(path) * (1.0 if index == 0 else 0.5) - 1024
        np.testing.assert_array_equal(array[index], expected)


def _monochrome1(ds: pydicom.Dataset, index: int) -> None:
    ds.PhotometricInterpretation = "MONOCHROME1"


def _rle(ds: pydicom.Dataset, index: int) -> None:
    ds.compress(RLELossless)


def _no_pixel_spacing(ds: pydicom.Dataset, index: int) -> None:
    del ds.PixelSpacing


@pytest.mark.parametrize("edit", [_monochrome1, _rle, _no_pixel_spacing])
def test_what_the_native_path_declines_goes_to_simpleitk(shared_data: Path, tmp_path: Path, edit) -> None:
    series = _variant(shared_data, MR, tmp_path, edit)
    assert read_native_series(series.files, series.headers) is None
    _assert_same_image(read_series(series), read_series(series, native=False))


def test_a_truncated_slice_fails_the_series_before_any_pixel_is_read(
    shared_data: Path, tmp_path: Path
) -> None:
    (series,), _ = find_series(shared_data / MR)
    for path in series.files:
        data = path.read_bytes()
        (tmp_path / path.name).write_bytes(data[:-1000] if path == series.files[5] else data)
    found, (skipped,) = find_series(tmp_path)
    assert not found and skipped.failed
    assert f"{series.files[5].name} is truncated: the file ends 1000 bytes before" in skipped.reason
