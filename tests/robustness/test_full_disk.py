"""A batch written onto a filesystem that fills up part-way (issue 44 §2): each case is complete or
absent and marked failed with "No space left on device", ``summary.csv`` stays a valid CSV, and a
re-run once there is room completes the batch with the same labels as an undisturbed run.

The filesystem is a real tmpfs of a few hundred KB, mounted by the test (root, as here and in CI);
without the right to mount, ``RLIMIT_FSIZE`` would be the fallback, but it fails with "File too
large", not a full disk, so the test then skips, except under ``CI=true``.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.robustness.test_batch_interrupt import _cases


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs: {made.stderr.decode()}")
        pytest.skip(f"cannot mount a tmpfs (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _predict(model: Path, source: Path, out: Path) -> subprocess.CompletedProcess:
    command = ["predict", "-m", str(model), "-i", str(source), "-o", str(out), "--device", "cpu"]
    return subprocess.run([sys.executable, "-m", "scseg", *command], capture_output=True, text=True)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _resize(mount: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)


@pytest.mark.slow
def test_a_disk_that_fills_up_part_way_fails_cases_whole_and_the_rerun_completes(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path, small_tmpfs: Path
) -> None:
    source = _cases(phantom_root, tmp_path / "in", 6)
    reference = tmp_path / "reference"
    assert _predict(phantom_run_3d, source, reference).returncode == 0
    case_bytes = sum(f.stat().st_size for f in reference.rglob("*") if f.is_file()) // 6
    _resize(small_tmpfs, f"{int(case_bytes * 2.5) // 4096 * 4096 + 8192}")  # room for about two cases

    out = small_tmpfs / "out"
    full = _predict(phantom_run_3d, source, out)
    assert full.returncode == 5 and "Traceback" not in full.stderr, full.stderr[-3000:]
    rows = _rows(out)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"done", "failed"}, rows
    done = [r for r in rows if r["status"] == "done"]
    assert 1 <= len(done) <= 3, rows
    for row in rows:
        if row["status"] == "done":
            case = Path(row["output"])
            assert sorted(p.name for p in case.iterdir()) == sorted(
                p.name for p in (reference / case.name).iterdir()
            )
            nib.load(case / "labels.nii.gz").get_fdata()  # whole: the gzip stream reads to its end
        else:
            assert "No space left on device" in row["message"] and row["output"] == "", row
    left = sorted(p.name for p in out.iterdir())
    assert len([n for n in left if not n.startswith(".") and n != "summary.csv"]) == len(done), left

    _resize(small_tmpfs, "64m")
    again = _predict(phantom_run_3d, source, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {r["status"] for r in _rows(out)} == {"done"}
    for case in sorted(reference.iterdir()):
        if case.is_dir():
            np.testing.assert_array_equal(
                np.asanyarray(nib.load(out / case.name / "labels.nii.gz").dataobj),
                np.asanyarray(nib.load(case / "labels.nii.gz").dataobj),
            )
    shutil.rmtree(out)


def _train(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scseg", "train", str(config), "--out", str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.slow
def test_training_onto_a_full_disk_keeps_the_last_checkpoint_and_resumes(
    tiny_config: dict, write_config, tmp_path: Path, small_tmpfs: Path
) -> None:
    tiny_config["train"] |= {"max_epochs": 1}
    reference = tmp_path / "reference"
    assert _train(write_config(tiny_config, "one.yaml"), reference).returncode == 0
    one_epoch = sum(f.stat().st_size for f in reference.rglob("*") if f.is_file())
    checkpoint = (reference / "checkpoints" / "last.pt").stat().st_size
    _resize(small_tmpfs, f"{(one_epoch + checkpoint // 2) // 4096 * 4096 + 8192}")  # no room for a 2nd copy

    tiny_config["train"] |= {"max_epochs": 6}
    config = write_config(tiny_config, "six.yaml")
    run = small_tmpfs / "run"
    full = _train(config, run)
    output = full.stdout + full.stderr
    assert full.returncode != 0 and "Traceback" not in output, output[-3000:]
    assert "No space left on device" in output and "--resume" in output, output[-3000:]
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # whole
    assert 1 <= last["epoch"] < 6
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]

    _resize(small_tmpfs, "64m")
    again = _train(config, run, "--resume")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 6
