"""``scseg predict`` on folder trees: DICOM and NIfTI mixed with junk, bad series, atomic outputs."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless

from scseg.engine import predict_folder
from scseg.engine.predict_folder import predict_path
from scseg.engine.predictor import Predictor
from scseg.errors import DataError
from scseg.io.dicom_seg import read_dicom_seg
from scseg.io.output_lock import LOCK_FILE
from scseg.io.output_names import MARKER
from tests.prediction_helpers import dice


def clone_series(source: Path, target: Path, description: str, image_type: list[str] | None = None) -> None:
    """Copy a DICOM series with new Series/SOP Instance UIDs (a distinct series of the same study)."""
    target.mkdir(parents=True, exist_ok=True)
    series_uid = pydicom.uid.generate_uid()
    for i, path in enumerate(sorted(source.iterdir())):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesDescription = description
        ds.SeriesNumber = 77 if image_type is None else 99
        if image_type is not None:
            ds.ImageType = image_type
        ds.save_as(target / f"IMG{i:04d}")


def predict_cli(run_dir: Path, source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = ["predict", "-m", str(run_dir), "-i", str(source), "-o", str(out), *extra]
    return subprocess.run([sys.executable, "-m", "scseg", *command], capture_output=True, text=True)


def read_summary(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def mixed_tree(phantom_root: Path, tmp_path: Path) -> Path:
    """A PACS-like export: a DICOM series, a second series and a localizer in one folder, a series
    with a truncated slice, a NIfTI file, and files that are not images."""
    root = tmp_path / "export"
    series = phantom_root / "dicom" / "phantom_000"
    shutil.copytree(series, root / "PAT1" / "mixed")
    clone_series(series, root / "PAT1" / "mixed", "second series")
    localizer = root / "tmp_localizer"
    clone_series(series, localizer, "scout", image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    for i, f in enumerate(sorted(localizer.iterdir())):
        if i == 0:
            shutil.move(f, root / "PAT1" / "mixed" / "SCOUT0001")
    shutil.rmtree(localizer)
    broken = root / "PAT1" / "broken"
    clone_series(series, broken, "truncated")
    victim = sorted(broken.iterdir())[5]
    victim.write_bytes(victim.read_bytes()[: int(victim.stat().st_size * 0.6)])
    (root / "nifti").mkdir()
    shutil.copy(phantom_root / "imagesTr" / "phantom_001.nii.gz", root / "nifti" / "phantom_001.nii.gz")
    (root / "README.txt").write_text("exported by a PACS")
    (root / "PAT1" / "DICOMDIR.bak").write_bytes(b"\x00" * 300)
    return root


def test_a_mixed_export_is_segmented_and_every_series_reported(
    phantom_run_3d: Path, phantom_root: Path, mixed_tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    predictor = Predictor(phantom_run_3d, device="cpu")
    records = predict_path(predictor, mixed_tree, out, progress=False)
    rows = read_summary(out)
    assert len(rows) == len(records) == 5
    by_status = {s: [r for r in rows if r["status"] == s] for s in ("done", "skipped", "failed")}
    assert sorted(r["series"] for r in by_status["done"]) == [
        "1_scseg_phantom_000",
        "77_second_series",
        "phantom_001",
    ]
    assert len(by_status["skipped"]) == 1 and "localizer" in by_status["skipped"][0]["message"]
    assert len(by_status["failed"]) == 1 and "broken" in by_status["failed"][0]["source"]

    # the DICOM series: outputs on its own grid, SEG decodes to the label map, Dice against the phantom
    case = Path(next(r["output"] for r in by_status["done"] if r["series"] == "1_scseg_phantom_000"))
    assert case.relative_to(out).parts[0] == "phantom_000"  # <patient>/<study>/<series>
    assert {p.name for p in case.iterdir()} == {
        "labels.nii.gz",
        "seg.dcm",
        "volumes.csv",
        "preview.png",
        MARKER,
    }
    labels = nib.load(case / "labels.nii.gz")
    segments = read_dicom_seg(case / "seg.dcm", labels)
    np.testing.assert_array_equal(segments, np.asanyarray(labels.dataobj))  # values 1..3 = segments 1..3
    truth = nib.load(phantom_root / "labelsTr" / "phantom_000.nii.gz")
    predicted = nib.as_closest_canonical(labels)
    np.testing.assert_allclose(predicted.affine, nib.as_closest_canonical(truth).affine, atol=1e-3)
    canonical_truth = np.asanyarray(nib.as_closest_canonical(truth).dataobj)
    assert dice(np.asanyarray(predicted.dataobj), canonical_truth, 1) > 0.6
    with (case / "volumes.csv").open() as f:
        volumes = list(csv.DictReader(f))
    assert [v["structure"] for v in volumes] == ["ventricle", "lesion", "rim"]
    voxel_ml = abs(np.linalg.det(labels.affine[:3, :3])) / 1000
    assert float(volumes[2]["volume_ml"]) == pytest.approx(
        (np.asanyarray(labels.dataobj) == 3).sum() * voxel_ml, rel=1e-3
    )

    # the NIfTI file: OUT_DIR/<its folders under --input>/<case>/ without seg.dcm
    assert {p.name for p in (out / "nifti" / "phantom_001").iterdir()} == {
        "labels.nii.gz",
        "volumes.csv",
        "preview.png",
        MARKER,
    }
    assert not list(out.rglob("*.partial*")), "no temp files or folders left behind"


def test_the_cli_exit_code_says_that_a_series_failed(
    phantom_run_3d: Path, mixed_tree: Path, tmp_path: Path
) -> None:
    run = predict_cli(phantom_run_3d, mixed_tree, tmp_path / "o")
    assert run.returncode == 5, run.stderr
    assert "failed" in run.stdout and "Traceback" not in run.stderr
    ok = predict_cli(phantom_run_3d, mixed_tree / "nifti" / "phantom_001.nii.gz", tmp_path / "single")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "single" / "phantom_001" / "labels.nii.gz").is_file()


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        ("empty", 3, "no DICOM image series and no NIfTI file"),
        ("text", 3, "no DICOM image series and no NIfTI file"),
        ("missing", 3, "does not exist"),
        ("views3d", 2, "applies to 2D models"),
        ("norun", 4, "is not a model"),
        ("rle_binary", 2, "binary SEG (1 bit per voxel) may be stored uncompressed or as JPEG 2000 only"),
        ("seg_type", 2, "--seg-type labels: expected one of binary, fractional"),
    ],
)
def test_bad_invocations_exit_with_a_clear_message(
    phantom_run_3d: Path, tmp_path: Path, setup: str, code: int, message: str
) -> None:
    source, run_dir, extra = tmp_path / "in", phantom_run_3d, []
    source.mkdir()
    if setup == "text":
        (source / "notes.txt").write_text("nothing to see")
        (source / "sub").mkdir()
    elif setup == "missing":
        source = tmp_path / "nowhere"
    elif setup == "views3d":
        extra = ["--views", "axial,coronal"]
    elif setup == "norun":
        run_dir = tmp_path
    elif setup == "rle_binary":
        extra = ["--seg-compression", "rle"]
    elif setup == "seg_type":
        extra = ["--seg-type", "labels"]
    cli = predict_cli(run_dir, source, tmp_path / "o", *extra)
    assert (
        cli.returncode == code and message in " ".join(cli.stderr.split()) and "Traceback" not in cli.stderr
    )


def test_existing_outputs_are_replaced_whole_or_not_at_all(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = phantom_root / "imagesTr" / "phantom_002.nii.gz"
    out = tmp_path / "out"
    predictor = Predictor(phantom_run_3d, device="cpu")
    predict_path(predictor, source, out, progress=False)
    before = {p.name: p.read_bytes() for p in (out / "phantom_002").iterdir()}

    def broken_preview(*args, **kwargs) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(predict_folder, "save_preview", broken_preview)
    records = predict_path(predictor, source, out, probabilities=True, progress=False)
    assert records[0].status == "failed" and "disk full" in records[0].message
    after = {p.name: p.read_bytes() for p in (out / "phantom_002").iterdir()}
    assert after == before, "a failed re-run leaves the previous outputs as they were"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [LOCK_FILE]

    monkeypatch.undo()
    predict_path(predictor, source, out, probabilities=True, progress=False)
    assert (out / "phantom_002" / "probabilities.nii.gz").is_file()


def test_find_inputs_raises_for_a_path_without_images(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no DICOM image series and no NIfTI file"):
        predict_folder.find_inputs(tmp_path, tmp_path / "out")


def test_images_that_cannot_be_segmented_fail_with_the_reason(phantom_run_3d: Path, tmp_path: Path) -> None:
    import nibabel as nib

    images = tmp_path / "in"
    images.mkdir()
    nan = np.ones((24, 24, 24), np.float32)
    nan[3:5] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), images / "nan.nii.gz")
    nib.save(nib.Nifti1Image(np.full((24, 24, 24), 7, np.int16), np.eye(4)), images / "constant.nii.gz")
    predict_path(Predictor(phantom_run_3d, device="cpu"), images, tmp_path / "out", progress=False)
    rows = {r["series"]: r for r in read_summary(tmp_path / "out")}
    assert rows["nan"]["status"] == "failed" and "NaN or infinite" in rows["nan"]["message"]
    assert rows["constant"]["status"] == "failed" and "constant" in rows["constant"]["message"]
    assert not (tmp_path / "out" / "nan").exists() and not (tmp_path / "out" / "constant").exists()


def test_an_unwritable_output_is_refused_before_any_inference(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("x")
    cli = predict_cli(phantom_run_3d, phantom_root / "imagesTr", tmp_path / "a_file" / "out")
    assert cli.returncode == 2 and "cannot be written to" in cli.stderr and "Traceback" not in cli.stderr


@pytest.mark.data
def test_a_series_the_seg_cannot_describe_fails_before_inference(
    phantom_run_3d: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.dicom_helpers import nudge_orientation

    nudged = nudge_orientation(shared_data, tmp_path, 5e-4)  # read as one volume, not as one SEG
    predictor = Predictor(phantom_run_3d, device="cpu")
    calls: list[int] = []
    monkeypatch.setattr(predictor, "predict", lambda *a, **k: calls.append(1))
    predict_path(predictor, nudged, tmp_path / "out", progress=False)
    (row,) = read_summary(tmp_path / "out")
    assert row["status"] == "failed" and "ImageOrientationPatient differs" in row["message"]
    assert calls == [], "inference ran for a series whose SEG could not be written"


def test_a_fractional_compressed_seg_holds_the_probabilities(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    predictor, seg = (
        Predictor(phantom_run_3d, device="cpu"),
        predict_folder.SegOptions("fractional", "jpeg2000"),
    )
    predict_path(predictor, phantom_root / "dicom", tmp_path / "only", progress=False, seg=seg)
    assert not (Path(read_summary(tmp_path / "only")[0]["output"]) / "probabilities.nii.gz").exists()
    out = tmp_path / "out"
    predict_path(predictor, phantom_root / "dicom", out, probabilities=True, progress=False, seg=seg)
    (row,) = read_summary(out)
    case = Path(row["output"])
    stored = hd.seg.segread(case / "seg.dcm")
    assert stored.SegmentationType == "FRACTIONAL" and stored.file_meta.TransferSyntaxUID == JPEG2000Lossless
    # the structures' probabilities (background left out), stored as 0..255
    probabilities = np.asanyarray(nib.load(case / "probabilities.nii.gz").dataobj)[..., 1:]
    fractions = read_dicom_seg(case / "seg.dcm", nib.load(case / "labels.nii.gz"))
    assert fractions.shape == probabilities.shape and probabilities.max() > 0.9
    np.testing.assert_allclose(fractions, probabilities, atol=0.5 / 255 + 1e-6)


@pytest.mark.slow
def test_torchrun_shards_the_cases_and_a_batch_resumes_where_it_stopped(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    shutil.copytree(phantom_root / "dicom" / "phantom_000", source / "PAT1" / "s1")
    clone_series(phantom_root / "dicom" / "phantom_000", source / "PAT1" / "s2", "second series")
    for i in range(1, 4):
        shutil.copy(phantom_root / "imagesTr" / f"phantom_00{i}.nii.gz", source / f"case{i}.nii.gz")
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "scseg", "predict", "-m", str(phantom_run_3d), "-i", str(source), "-o", str(out), "--device", "cpu",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = read_summary(out)
    assert len(rows) == 5 and all(r["status"] == "done" for r in rows), rows
    assert sorted(r["rank"] for r in rows) == ["0", "0", "0", "1", "1"], "each case once, both ranks working"
    assert len({r["output"] for r in rows}) == 5
    assert not [p.name for p in out.iterdir() if p.name.startswith(".summary")], "rank files merged"
    assert run.stdout.count("scseg predict:") == 1, "rank 0 reports for all"
    labels = {r["output"]: Path(r["output"], "labels.nii.gz").stat().st_mtime_ns for r in rows}

    # a second run keeps what the same model made with the same options; --overwrite redoes it
    again = predict_cli(phantom_run_3d, source, out)
    assert again.returncode == 0, again.stderr
    assert all("done in an earlier run" in r["message"] for r in read_summary(out))
    assert {o: Path(o, "labels.nii.gz").stat().st_mtime_ns for o in labels} == labels
    fresh = predict_cli(phantom_run_3d, source, out, "--overwrite")
    assert fresh.returncode == 0
    assert not any("earlier run" in r["message"] for r in read_summary(out))
    assert all(Path(o, "labels.nii.gz").stat().st_mtime_ns != t for o, t in labels.items())
    probs = predict_cli(phantom_run_3d, source, out, "--probabilities")  # other outputs: not reused
    assert probs.returncode == 0 and all((Path(o) / "probabilities.nii.gz").is_file() for o in labels)
