"""DICOM SEG written on real series' grids decodes to the same voxels, frame by frame."""

from __future__ import annotations

import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from scseg.errors import DataError
from scseg.io.dicom_seg import _segment_descriptions, read_dicom_seg, seg_source_headers, write_dicom_seg
from scseg.io.dicom_series import find_series, read_series
from scseg.io.reports import structure_colors
from scseg.labels.codes import PRIVATE_SCHEME, segment_codes
from tests.dicom_helpers import (
    NAMES,
    REAL_SERIES,
    dciodvfy_errors,
    dcmqi_segments,
    nudge_orientation,
    synthetic_segments,
    validator,
)


@pytest.mark.data
@pytest.mark.parametrize("relative", REAL_SERIES)
def test_seg_round_trip_on_real_series(shared_data: Path, relative: str, tmp_path: Path) -> None:
    (series,), _ = find_series(shared_data / relative)
    image = read_series(series)
    segments = synthetic_segments(image.shape)
    path = tmp_path / "seg.dcm"
    write_dicom_seg(segments, image.affine, series, NAMES, structure_colors(3), path, algorithm="scseg test")

    seg = hd.seg.segread(path)
    assert [seg.get_segment_description(n).segment_label for n in (1, 2, 3)] == NAMES
    np.testing.assert_array_equal(read_dicom_seg(path, image), segments)
    assert dciodvfy_errors(path) == []
    np.testing.assert_array_equal(dcmqi_segments(path, image, tmp_path / "dcmqi"), segments)

    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in series.files]
    if len(sources) > 1:
        # independent of our decoder: highdicom's frame for the k-th sorted instance is our slice k
        uids = [ds.SOPInstanceUID or ds.file_meta.MediaStorageSOPInstanceUID for ds in sources]
        frames = seg.get_pixels_by_source_instance(uids, combine_segments=True)
        np.testing.assert_array_equal(frames, segments.transpose(2, 1, 0))
        referenced = {
            ref.ReferencedSOPInstanceUID
            for item in seg.ReferencedSeriesSequence
            for ref in item.ReferencedInstanceSequence
        }
        assert referenced == set(uids)
    else:  # enhanced multi-frame: frame i lies at the slice its position says
        frames_meta = sources[0].PerFrameFunctionalGroupsSequence
        lps_to_index = np.linalg.inv(np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine)
        slices = [
            round((lps_to_index @ [*map(float, f.PlanePositionSequence[0].ImagePositionPatient), 1.0])[2])
            for f in frames_meta
        ]
        frames = seg.get_pixels_by_source_frame(
            sources[0].SOPInstanceUID, list(range(1, len(frames_meta) + 1)), combine_segments=True
        )
        np.testing.assert_array_equal(frames, segments.transpose(2, 1, 0)[slices])


@pytest.mark.data
def test_an_empty_prediction_still_gives_a_valid_seg(shared_data: Path, tmp_path: Path) -> None:
    (series,), _ = find_series(shared_data / REAL_SERIES[0])
    image = read_series(series)
    path = tmp_path / "seg.dcm"
    write_dicom_seg(np.zeros(image.shape, np.uint16), image.affine, series, NAMES, structure_colors(3), path)
    assert not read_dicom_seg(path, image).any()


@pytest.mark.data
def test_orientation_noise_is_normalised_in_the_seg(shared_data: Path, tmp_path: Path) -> None:
    (series,), _ = find_series(nudge_orientation(shared_data, tmp_path, 3e-7))
    image = read_series(series)
    headers, _ = seg_source_headers(series)
    for ds, file in zip(headers, series.files, strict=True):  # the stored orientations again
        ds.ImageOrientationPatient = pydicom.dcmread(file, stop_before_pixels=True).ImageOrientationPatient
    with pytest.raises(ValueError, match="orientation"):  # what highdicom says of them
        hd.seg.Segmentation(
            source_images=headers,
            pixel_array=np.zeros((len(series.files), *image.shape[1::-1]), np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=_segment_descriptions(
                NAMES[:1], [(255, 0, 0)], "test", segment_codes(NAMES[:1])
            ),
            series_instance_uid=hd.UID(),
            series_number=1,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="t",
            manufacturer_model_name="t",
            software_versions="0",
            device_serial_number="0",
        )
    segments = synthetic_segments(image.shape)
    path = tmp_path / "seg.dcm"
    notes = write_dicom_seg(segments, image.affine, series, NAMES, structure_colors(3), path)
    assert any("ImageOrientationPatient differences" in n for n in notes)
    np.testing.assert_array_equal(read_dicom_seg(path, image), segments)


@pytest.mark.data
def test_orientation_beyond_the_tolerance_is_refused_by_name(shared_data: Path, tmp_path: Path) -> None:
    (series,), _ = find_series(nudge_orientation(shared_data, tmp_path, 5e-4))
    with pytest.raises(
        DataError, match=r"ImageOrientationPatient differs between its slices by up to 0\.0005"
    ):
        seg_source_headers(series)


@pytest.mark.data
def test_segments_carry_their_codes_and_a_private_scheme_is_declared(
    shared_data: Path, tmp_path: Path
) -> None:
    (series,), _ = find_series(shared_data / REAL_SERIES[0])
    image = read_series(series)
    names = ["Left-Hippocampus", "ctx-rh-superiorfrontal", "Right-Putamen"]
    path = tmp_path / "seg.dcm"
    write_dicom_seg(synthetic_segments(image.shape), image.affine, series, names, structure_colors(3), path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    types = [item.SegmentedPropertyTypeCodeSequence[0] for item in ds.SegmentSequence]
    assert [(t.CodingSchemeDesignator, t.CodeValue) for t in types][::2] == [
        ("SCT", "5366008"),
        ("SCT", "89278009"),
    ]
    assert [t.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning for t in types[::2]] == [
        "Left",
        "Right",
    ]
    assert (types[1].CodingSchemeDesignator, types[1].CodeMeaning) == (
        PRIVATE_SCHEME,
        "ctx-rh-superiorfrontal",
    )
    (declared,) = ds.CodingSchemeIdentificationSequence
    assert declared.CodingSchemeDesignator == PRIVATE_SCHEME and declared.CodingSchemeResponsibleOrganization
    # dciodvfy knows no private scheme (it warns about any designator outside its list): no errors,
    # and no scheme warning but the declared private one
    out = subprocess.run([validator("dciodvfy"), str(path)], capture_output=True, text=True, check=False)
    lines = (out.stdout + out.stderr).splitlines()
    assert not [line for line in lines if line.startswith("Error")]
    scheme_lines = [line for line in lines if "Coding Scheme Designator" in line]
    assert scheme_lines and all(f"<{PRIVATE_SCHEME}>" in line for line in scheme_lines)
