"""Atomic writes: a failure leaves the previous file or folder exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from scseg.io.atomic import AtomicDirectory, atomic_write_bytes


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "case"
    with AtomicDirectory(target) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError), AtomicDirectory(target) as tmp:
        (tmp / "a.txt").write_text("two")
        raise RuntimeError("crash half-way")
    assert (target / "a.txt").read_text() == "one" and sorted(p.name for p in tmp_path.iterdir()) == ["case"]
    with AtomicDirectory(target) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # the new folder, not a merge
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]


def test_atomic_write_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    atomic_write_bytes(path, lambda f: f.write(b"old"))

    def failing(f) -> None:
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write_bytes(path, failing)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_outputs_follow_the_umask(tmp_path: Path, umask: int) -> None:
    """Temp files and folders are created private; once in place they have the mode a plain
    mkdir / open would give, so e.g. a PACS service account in the group can read results."""
    import os

    old = os.umask(umask)
    try:
        with AtomicDirectory(tmp_path / f"case{umask}") as tmp:
            (tmp / "labels.nii.gz").write_bytes(b"x")
        atomic_write_bytes(tmp_path / f"summary{umask}.csv", lambda f: f.write(b"a,b\n"))
    finally:
        os.umask(old)
    assert (tmp_path / f"case{umask}").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / f"summary{umask}.csv").stat().st_mode & 0o777 == 0o666 & ~umask


def test_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path: Path) -> None:
    import csv

    from scseg.io.csv_report import write_csv

    hostile = ["=cmd|' /C calc'!A0", "+SUM(1)", "-2+3", "@A1", "name\x00with\x07controls", "-1.5", "ok"]
    write_csv(tmp_path / "s.csv", ["value"], [[v] for v in hostile] + [[-2.5]])
    with (tmp_path / "s.csv").open() as f:
        cells = [row[0] for row in csv.reader(f)][1:]
    assert cells[:4] == ["'=cmd|' /C calc'!A0", "'+SUM(1)", "'-2+3", "'@A1"]
    assert cells[4] == "name\\x00with\\x07controls" and "\x00" not in (tmp_path / "s.csv").read_text()
    assert cells[5:] == ["-1.5", "ok", "-2.5"], "numbers, negative ones included, stay numbers"
