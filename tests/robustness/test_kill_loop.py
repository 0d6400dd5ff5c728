"""``kill -9`` at random moments, then re-runs (issue 44 §3): no truncated output is ever marked done,
and the batch ends with the outputs of an undisturbed run.

One batch holds a DICOM series (DICOM SEG and RTSTRUCT written beside the NIfTI labels) and three
NIfTI files. Each round starts ``scseg predict``, waits until the batch has begun (its
``summary.csv`` exists), kills it after a random share of the batch's own duration, checks every
``done`` row's folder, and starts again; a round that finished before its kill starts the next
from an empty output folder. Files with fresh UIDs or times (the DICOM objects) are compared by
content: pixels, segment and ROI names, contour points.
"""

from __future__ import annotations

import csv
import hashlib
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from scseg.io.output_names import CaseFiles

KILLS = 20


def _command(model: Path, source: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "scseg", "predict", "-m", str(model), "-i", str(source), "-o", str(out),
            "--device", "cpu", "--rtstruct"]  # fmt: skip


def _rows(out: Path) -> list[dict[str, str]]:
    try:
        with (out / CaseFiles.SUMMARY).open(newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _content(case: Path) -> dict[str, object]:
    """What a case folder says, without the UIDs and times a new run changes."""
    found: dict[str, object] = {}
    for path in sorted(case.iterdir()):
        if path.name == CaseFiles.LABELS:
            found[path.name] = hashlib.sha256(np.asanyarray(nib.load(path).dataobj).tobytes()).hexdigest()
        elif path.name == CaseFiles.SEG:
            seg = pydicom.dcmread(path)
            labels = [s.SegmentLabel for s in seg.SegmentSequence]
            found[path.name] = (labels, hashlib.sha256(seg.pixel_array.tobytes()).hexdigest())
        elif path.name == CaseFiles.RTSTRUCT:
            rt = pydicom.dcmread(path)
            names = [r.ROIName for r in rt.StructureSetROISequence]
            points = [
                [list(c.ContourData) for c in getattr(roi, "ContourSequence", [])]
                for roi in rt.ROIContourSequence
            ]
            found[path.name] = (names, points)
        elif not path.name.startswith("."):
            found[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _outputs(out: Path) -> dict[str, dict[str, object]]:
    return {row["source"]: _content(Path(row["output"])) for row in _rows(out)}


def _check_done_rows(out: Path, reference: dict[str, dict[str, object]]) -> None:
    for row in _rows(out):
        if row["status"] == "done":
            assert _content(Path(row["output"])) == reference[row["source"]], row
        else:
            assert row["status"] == "pending" and row["output"] == "", row


@pytest.mark.slow
def test_twenty_kills_at_random_moments_end_in_the_undisturbed_outputs(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    shutil.copytree(next((phantom_root / "dicom").iterdir()), source / "dicom_case")
    for i in range(1, 4):
        shutil.copy(phantom_root / "imagesTr" / f"phantom_{i:03d}.nii.gz", source / f"case_{i}.nii.gz")
    reference_dir = tmp_path / "reference"
    start = time.monotonic()
    process = subprocess.Popen(_command(phantom_run_3d, source, reference_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    while not (reference_dir / CaseFiles.SUMMARY).exists() and process.poll() is None:
        time.sleep(0.02)
    begun = time.monotonic()
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()[-2000:]
    batch_seconds = time.monotonic() - begun
    reference = _outputs(reference_dir)
    assert len(reference) == 4 and all(CaseFiles.RTSTRUCT in reference[s] for s in reference if "dicom" in s)
    assert batch_seconds < time.monotonic() - start

    rng = random.Random(44)
    out, kills, rounds = tmp_path / "out", 0, 0
    while kills < KILLS:
        rounds += 1
        assert rounds < 4 * KILLS, f"only {kills} kills landed in {rounds} rounds"
        process = subprocess.Popen(_command(phantom_run_3d, source, out), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while not (out / CaseFiles.SUMMARY).exists() and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0, batch_seconds))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        _check_done_rows(out, reference)
        if {r["status"] for r in _rows(out)} == {"done"}:  # finished before its kill: start afresh
            shutil.rmtree(out)
    final = subprocess.run(_command(phantom_run_3d, source, out), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    assert _outputs(out) == reference
    leftovers = [p for p in out.rglob(".*") if p.name.endswith((".partial", ".tmp", ".old", ".reserve"))]
    assert leftovers == []


@pytest.mark.slow
def test_training_killed_twenty_times_resumes_to_the_end_with_loadable_checkpoints(
    tiny_config: dict, write_config, tmp_path: Path
) -> None:
    tiny_config["train"] |= {"max_epochs": 40, "val_interval": 5}
    config, run = write_config(tiny_config), tmp_path / "run"
    checkpoints = run / "checkpoints"
    rng = random.Random(43)
    kills, rounds = 0, 0
    while kills < KILLS:
        rounds += 1
        assert rounds < 4 * KILLS, f"only {kills} kills landed in {rounds} rounds"
        resume = ["--resume"] if (checkpoints / "last.pt").is_file() else []
        if not resume and run.exists():
            shutil.rmtree(run)  # killed before its first checkpoint: a new run
        command = [sys.executable, "-m", "scseg", "train", str(config), "--out", str(run), *resume]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not checkpoints.is_dir() and process.poll() is None:  # the run has begun
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 3))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        _, stderr = process.communicate()
        assert process.returncode in (0, -signal.SIGKILL), stderr.decode()[-2000:]
        for path in checkpoints.glob("*.pt"):
            torch.load(path, weights_only=True)  # never unreadable
        if process.returncode == 0:  # finished before its kill: the next round trains afresh
            shutil.rmtree(run)
    command = [sys.executable, "-m", "scseg", "train", str(config), "--out", str(run)]
    final = subprocess.run([*command, "--resume"] if (checkpoints / "last.pt").is_file() else command,
                           capture_output=True, text=True)  # fmt: skip
    assert final.returncode == 0, final.stderr[-2000:]
    assert torch.load(checkpoints / "last.pt", weights_only=True)["epoch"] == 40
    assert not [p for p in checkpoints.iterdir() if p.name.endswith(".tmp")]
