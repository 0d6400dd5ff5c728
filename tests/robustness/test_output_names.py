"""Outputs never collide, never destroy: one folder per input, the same on every run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from scseg.engine.predict_folder import predict_path
from scseg.engine.predictor import Predictor
from scseg.io.dicom_series import DicomSeries
from scseg.io.output_names import MARKER, OutputTarget, nifti_target, resolve_targets, series_target


def _series(patient: str, uid: str, number: str = "1", description: str = "T1") -> DicomSeries:
    return DicomSeries(uid, [], patient, "1.2.3", number, description)


def _resolved(targets: list[OutputTarget]) -> list[Path]:
    resolve_targets(targets)
    return [t.path for t in targets]


def test_patient_ids_that_sanitise_alike_get_distinct_stable_folders(tmp_path: Path) -> None:
    ids = ["A/B", "A?B", "A_B", "x" * 80 + "1", "x" * 80 + "2", "../../etc", ""]
    targets = [series_target(tmp_path, _series(p, f"1.2.{i}")) for i, p in enumerate(ids)]
    paths = _resolved(targets)
    assert len(set(paths)) == len(ids)
    for path in paths:
        assert path.is_relative_to(tmp_path) and ".." not in path.parts
        assert all(len(part) <= 80 for part in path.relative_to(tmp_path).parts)
    assert paths[2].parts[-3] == "A_B", "a name sanitising does not change stays as it is"
    again = _resolved(
        [series_target(tmp_path, _series(p, f"1.2.{i}")) for i, p in reversed(list(enumerate(ids)))]
    )
    assert sorted(again) == sorted(paths), "the same inputs get the same folders, in any order"


def test_equal_names_and_nested_folders_are_separated(tmp_path: Path) -> None:
    root = tmp_path / "in"
    niftis = [
        root / "a" / "x.nii.gz",
        root / "b" / "x.nii.gz",
        root / "x.nii",
        root / "x.nii.gz",
        root / "P1.nii.gz",
    ]
    targets = [nifti_target(tmp_path / "out", root, f) for f in niftis]
    targets += [
        series_target(tmp_path / "out", _series("P1", "1.2.9")),
        series_target(tmp_path / "out", _series("P1", "1.2.10")),
    ]
    paths = _resolved(targets)
    assert len(set(paths)) == len(paths)
    for one in paths:
        for other in paths:
            assert one == other or not other.is_relative_to(one), f"{other} inside {one}"
    assert paths[0].relative_to(tmp_path / "out") == Path("a/x") and paths[1].relative_to(
        tmp_path / "out"
    ) == Path("b/x")


def test_a_folder_holding_another_inputs_result_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "case").mkdir(parents=True)
    (out / "case" / MARKER).write_text("nifti:elsewhere/case.nii.gz\n")
    (target,) = [nifti_target(out, tmp_path / "in", tmp_path / "in" / "case.nii.gz")]
    resolve_targets([target])
    assert target.path != out / "case" and target.path.parent == out
    (mine,) = [nifti_target(out, tmp_path / "in", tmp_path / "in" / "case.nii.gz")]
    (out / "case" / MARKER).write_text(mine.identity + "\n")
    resolve_targets([mine])
    assert mine.path == out / "case", "its own earlier result is replaced"


def _copy_series(source: Path, target: Path, patient_id: str) -> None:
    target.mkdir(parents=True)
    series_uid = pydicom.uid.generate_uid()
    for path in sorted(source.iterdir()):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.SeriesInstanceUID = patient_id, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(target / path.name)


@pytest.mark.slow
def test_colliding_inputs_keep_every_result_across_reruns(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    """x.nii.gz in a/ and b/, a NIfTI named like a patient folder, PatientIDs A/B and A?B."""
    root = tmp_path / "in"
    nifti = phantom_root / "imagesTr" / "phantom_001.nii.gz"
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        shutil.copy(nifti, root / folder / "x.nii.gz")
    shutil.copy(nifti, root / "P1.nii.gz")
    dicom = phantom_root / "dicom" / "phantom_000"
    for i, patient in enumerate(("P1", "A/B", "A?B")):
        _copy_series(dicom, root / f"dicom{i}", patient)
    predictor = Predictor(phantom_run_3d, device="cpu")
    out = tmp_path / "out"
    first = predict_path(predictor, root, out, progress=False)
    assert [r.status for r in first] == ["done"] * 6
    outputs = {r.source: r.output for r in first}
    assert len(set(outputs.values())) == 6
    second = predict_path(predictor, root, out, progress=False)
    assert {r.source: r.output for r in second} == outputs, "stable across runs"
    for folder in outputs.values():
        assert (Path(folder) / "labels.nii.gz").is_file(), f"{folder} lost on the re-run"
    assert len(list(out.rglob(MARKER))) == 6
