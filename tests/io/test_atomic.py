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
