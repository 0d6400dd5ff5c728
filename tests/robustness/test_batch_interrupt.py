"""A batch stopped at any point says what happened, and the next run finishes it: ``kill -9``,
a second run into the same folder, temporaries of a killed write, outputs inside the input tree."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scseg.engine.predict_folder import predict_path
from scseg.engine.predictor import Predictor
from scseg.errors import ConfigError
from scseg.io.output_lock import OutputLock


def _rows(out: Path) -> list[dict[str, str]]:
    try:
        with (out / "summary.csv").open() as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _cases(phantom_root: Path, folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        shutil.copy(phantom_root / "imagesTr" / f"phantom_{i:03d}.nii.gz", folder / f"case_{i}.nii.gz")
    return folder


@pytest.mark.slow
def test_kill_9_mid_batch_leaves_true_rows_and_the_rerun_finishes(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    source, out = _cases(phantom_root, tmp_path / "in", 8), tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "scseg",
        "predict",
        "-m",
        str(phantom_run_3d),
        "-i",
        str(source),
        "-o",
        str(out),
        "--device",
        "cpu",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not any(r["status"] == "done" for r in _rows(out)):
            assert process.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    rows = _rows(out)
    assert len(rows) == 8 and {r["status"] for r in rows} == {"done", "pending"}, rows
    for row in rows:
        if row["status"] == "done":
            assert (Path(row["output"]) / "labels.nii.gz").is_file()
        else:
            assert row["output"] == ""
    done_before = {r["source"] for r in rows if r["status"] == "done"}

    records = predict_path(Predictor(phantom_run_3d, device="cpu"), source, out, progress=False)
    assert [r.status for r in records] == ["done"] * 8
    assert {r["status"] for r in _rows(out)} == {"done"}
    assert done_before <= {r.source for r in records}
    leftovers = [
        p for p in out.rglob(".*") if p.name.endswith((".partial", ".tmp", ".old", ".partial.nii.gz"))
    ]
    assert leftovers == [], "the killed run's temporaries are gone"


def test_a_second_run_into_the_same_folder_is_refused(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    source, out = _cases(phantom_root, tmp_path / "in", 1), tmp_path / "out"
    predictor = Predictor(phantom_run_3d, device="cpu")
    # what a first run holds while it works
    with OutputLock(out), pytest.raises(ConfigError, match=f"pid {os.getpid()}.*is writing into"):
        predict_path(predictor, source, out, progress=False)
    assert not (out / "summary.csv").exists()
    assert [r.status for r in predict_path(predictor, source, out, progress=False)] == ["done"]


def test_temporaries_of_a_killed_write_are_cleaned_or_restored(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    source, out = _cases(phantom_root, tmp_path / "in", 1), tmp_path / "out"
    predictor = Predictor(phantom_run_3d, device="cpu")
    (case,) = predict_path(predictor, source, out, progress=False)
    folder = Path(case.output)
    # killed between moving the old result aside and renaming the new one in
    os.replace(folder, folder.with_name(f".{folder.name}.4242.old"))
    (out / ".other.abcd.partial").mkdir()
    (out / ".summary.csv.x1.tmp").write_text("half")
    (out / "notes.tmp").write_text("the user's own file")
    predict_path(predictor, source, out, progress=False)
    assert (folder / "labels.nii.gz").is_file()
    assert sorted(p.name for p in out.iterdir()) == [".scseg.lock", folder.name, "notes.tmp", "summary.csv"]


def test_outputs_inside_the_input_tree_are_not_segmented_again(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    source = _cases(phantom_root, tmp_path / "in", 2)
    predictor = Predictor(phantom_run_3d, device="cpu")
    first = predict_path(predictor, source, source / "results", progress=False)
    other = predict_path(predictor, source, tmp_path / "elsewhere", progress=False)
    again = predict_path(predictor, source, source / "results", progress=False)
    assert len(first) == len(other) == len(again) == 2, [r.source for r in other]
