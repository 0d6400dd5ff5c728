"""``scseg predict`` end to end on real DICOM: CT and MR, oblique, multi-vendor, JPEG 2000,
enhanced multi-frame, gantry tilt, DICOM SEG objects, two series in one folder."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import yaml

from scseg.engine.predict_folder import SegOptions, predict_path
from scseg.engine.predictor import Predictor
from scseg.io.dicom_seg import read_dicom_seg
from scseg.io.dicom_series import find_series, read_series
from scseg.labels.codes import segment_codes

COPIED = {
    "tcia": "dicom_mr_brain_tcia_btp/Study3/11_HCropVolume",  # oblique MR crop
    "ct_jpeg2000": "dicom_ct_totalsegmentator/series",  # anonymised: blank UIDs
    "multiframe": "dicom2nifti_testdata/siemens_multiframe/anatomical/001",
    "philips": "dicom2nifti_testdata/philips/anatomical/001",
    "hfp": "dicom_mr_brain_positions_dcm_qa_decubitus/HFP",
    "tilt": "dicom_ct_head_gantry_tilt_dcm_qa_ct/series_GE",
    "dcmqi": "dicom_seg_dcmqi_ct3slice",  # a 3-slice CT and two DICOM SEG objects
}
TWO_IN_ONE = ["26401-T1prereg-52906", "36468-FLAIRreg-58706"]


@pytest.mark.data
@pytest.mark.slow
def test_predict_on_real_dicom(phantom_run_3d: Path, shared_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "export"
    for name, relative in COPIED.items():
        shutil.copytree(
            shared_data / relative, source / name, ignore=shutil.ignore_patterns("*.nrrd", "*.md")
        )
    (source / "two_series").mkdir()
    for series in TWO_IN_ONE:  # two series' files mixed in one folder
        for f in (shared_data / "dicom_mr_brain_tcia_btp/Study3" / series).iterdir():
            shutil.copy(f, source / "two_series" / f"{series[:5]}_{f.name}")
    out = tmp_path / "out"
    predictor = Predictor(phantom_run_3d, device="cpu")
    predict_path(predictor, source, out, progress=False)
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) == 8, [(r["source"], r["status"], r["message"]) for r in rows]
    assert {Path(r["source"]).relative_to(source).parts[0] for r in done} == {
        "tcia", "ct_jpeg2000", "multiframe", "philips", "hfp", "dcmqi", "two_series"
    }  # fmt: skip
    assert sum(1 for r in done if r["source"].endswith("two_series")) == 2
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "gantry tilt" in failed[0]["message"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 2 and all("not an image series (SEG)" in r["message"] for r in skipped)

    series_by_folder = {}
    for series in find_series(source)[0]:
        series_by_folder.setdefault(str(series.files[0].parent), []).append(series)
    for row in done:
        case = Path(row["output"])
        labels = nib.load(case / "labels.nii.gz")
        (series,) = [s for s in series_by_folder[row["source"]] if s.name == row["series"]]
        image = read_series(series)  # the series grid (checked against dcm2niix in tests/io)
        assert labels.shape == image.shape
        np.testing.assert_allclose(labels.affine, image.affine, atol=1e-4)
        np.testing.assert_array_equal(read_dicom_seg(case / "seg.dcm", labels), np.asanyarray(labels.dataobj))
        seg = hd.seg.segread(case / "seg.dcm")
        assert [d.SegmentLabel for d in seg.SegmentSequence] == ["ventricle", "lesion", "rim"]
        assert seg.StudyInstanceUID and seg.Modality == "SEG"
        assert (case / "preview.png").stat().st_size > 10_000
        with (case / "volumes.csv").open() as f:
            assert [v["structure"] for v in csv.DictReader(f)] == ["ventricle", "lesion", "rim"]
    ct = next(r for r in done if r["source"].endswith("ct_jpeg2000"))
    assert "blank SOPInstanceUID taken from the file meta header" in ct["message"]


@pytest.mark.data
def test_rtstruct_beside_the_seg_and_refused_before_inference_where_it_cannot_be(
    phantom_run_3d: Path, shared_data: Path, tmp_path: Path
) -> None:
    source = tmp_path / "export"
    for name in ("tcia", "multiframe"):
        shutil.copytree(shared_data / COPIED[name], source / name)
    out = tmp_path / "out"
    predictor = Predictor(phantom_run_3d, device="cpu")
    calls = []
    predictor.predict = lambda *a, _predict=predictor.predict, **k: calls.append(1) or _predict(*a, **k)
    records = predict_path(predictor, source, out, progress=False, seg=SegOptions(rtstruct=True))
    status = {Path(r.source).name: r for r in records}
    assert status["tcia"].status == "done" and status["multiframe"].status == "failed"
    assert "single-frame" in status["multiframe"].message and len(calls) == 1  # refused before inference
    rt = pydicom.dcmread(Path(status["tcia"].output) / "rtstruct.dcm")
    assert [roi.ROIName for roi in rt.StructureSetROISequence] == predictor.label_names
    codes = [o.RTROIIdentificationCodeSequence[0] for o in rt.RTROIObservationsSequence]
    expected = predictor.spec.labels.segment_codes()
    assert [(c.CodingSchemeDesignator, c.CodeValue) for c in codes] == [
        (e.type.scheme, e.type.value) for e in expected
    ]
    seg = pydicom.dcmread(Path(status["tcia"].output) / "seg.dcm", stop_before_pixels=True)
    assert [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence] == [
        e.type.value for e in expected
    ]


def _renamed_run(run: Path, names: list[str], target: Path) -> Path:
    """A copy of ``run`` whose structures carry ``names`` (and their codes): a model's names are
    whatever its training data called them."""
    shutil.copytree(run, target)
    spec = yaml.safe_load((target / "model.yaml").read_text())
    spec["labels"]["names"] = names
    spec["labels"]["codes"] = [c.model_dump() for c in segment_codes(names)]
    (target / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return target


@pytest.mark.data
def test_rtstruct_roi_names_follow_tg263_with_standard_codes(
    phantom_run_3d: Path, shared_data: Path, tmp_path: Path
) -> None:
    """Issue 46: planning systems match ROIs by TG-263 name; OpenKBP calls them RightParotid."""
    run = _renamed_run(phantom_run_3d, ["RightParotid", "LeftParotid", "Mandible"], tmp_path / "run")
    shutil.copytree(shared_data / COPIED["ct_jpeg2000"], tmp_path / "in" / "ct")
    predictor = Predictor(run, device="cpu")
    (record,) = predict_path(
        predictor, tmp_path / "in", tmp_path / "out", progress=False, seg=SegOptions(rtstruct=True)
    )
    assert record.status == "done", record.message
    rt = pydicom.dcmread(Path(record.output) / "rtstruct.dcm")
    assert [roi.ROIName for roi in rt.StructureSetROISequence] == ["Parotid_R", "Parotid_L", "Bone_Mandible"]
    codes = [o.RTROIIdentificationCodeSequence[0] for o in rt.RTROIObservationsSequence]
    assert [(c.CodingSchemeDesignator, c.CodeValue) for c in codes] == [
        ("SCT", "45289007"), ("SCT", "45289007"), ("SCT", "91609006")
    ]  # fmt: skip
    seg = hd.seg.segread(Path(record.output) / "seg.dcm")
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["RightParotid", "LeftParotid", "Mandible"]
