"""User errors end in a one-paragraph message and an exit code, never a traceback."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.robustness.defects import copy_series, declare_size


def scseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scseg", *args], capture_output=True, text=True)


def test_file_names_that_are_not_utf8_are_segmented_and_reported(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    odd = Path(os.fsdecode(os.fsencode(source) + b"/caso_\xe9\xff"))  # Latin-1 bytes, not UTF-8
    odd.mkdir(parents=True)
    shutil.copy(phantom_root / "imagesTr" / "phantom_001.nii.gz", odd / os.fsdecode(b"t1_\xe9.nii.gz"))
    shutil.copy(phantom_root / "imagesTr" / "phantom_002.nii.gz", source / "plain.nii.gz")
    out = tmp_path / "out"
    result = scseg("predict", "-m", str(phantom_run_3d), "-i", str(source), "-o", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with (out / "summary.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["done", "done"]
    assert any("caso_\\xe9\\xff/t1_\\xe9.nii.gz" in r["source"] for r in rows), rows
    assert all(Path(r["output"], "labels.nii.gz").is_file() for r in rows)


def test_convert_into_a_path_under_a_file_is_refused(shared_data: Path, tmp_path: Path) -> None:
    copy_series(shared_data, "mr_uncompressed", tmp_path / "series")
    (tmp_path / "a_file").write_text("not a folder")
    result = scseg("convert", str(tmp_path / "series"), str(tmp_path / "a_file" / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot be written to" in result.stderr and "a_file" in result.stderr


def test_convert_of_an_impossible_size_fails_the_series_without_a_traceback(
    shared_data: Path, tmp_path: Path
) -> None:
    files = copy_series(shared_data, "mr_uncompressed", tmp_path / "series")
    declare_size(files, 65535)
    result = scseg("convert", str(tmp_path / "series"), str(tmp_path / "out"))
    assert result.returncode == 5 and "Traceback" not in result.stderr + result.stdout
    assert "failed" in result.stdout and "65535" in result.stdout
    assert not list((tmp_path / "out").rglob("*.nii.gz"))
