"""Incomplete or corrupt DICOM is never "done": each class, at each end and in the middle of real
series, is a failed series whose message names the file and the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from scseg.io.convert import convert_folder
from scseg.io.dicom_series import find_series
from tests.robustness.defects import DICOM_DEFECTS, POSITIONS, SERIES, copy_series, declare_size, pick
from tests.unprivileged import unprivileged


def _only_result(folder: Path, out: Path):
    results = convert_folder(folder, out)
    assert len(results) == 1, [r.detail for r in results]
    return results[0]


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("defect", list(DICOM_DEFECTS))
@pytest.mark.parametrize("source", list(SERIES))
def test_a_damaged_slice_fails_its_series_naming_file_and_reason(
    shared_data: Path, tmp_path: Path, source: str, defect: str, position: str
) -> None:
    files = copy_series(shared_data, source, tmp_path / "series")
    victim = pick(files, position)
    edit, reason = DICOM_DEFECTS[defect]
    edit(victim)
    result = _only_result(tmp_path / "series", tmp_path / "out")
    assert result.status == "failed" and result.output is None
    assert victim.name in result.detail and reason in result.detail, result.detail
    assert not list((tmp_path / "out").rglob("*.nii.gz")), "nothing written for a failed series"


def test_a_broken_file_in_a_flat_folder_fails_only_its_own_series(shared_data: Path, tmp_path: Path) -> None:
    """A PACS export with two series in one folder: the UID in the broken file's raw bytes says
    which series lost a slice."""
    flat = tmp_path / "flat"
    files = copy_series(shared_data, "mr_uncompressed", flat)
    other_uid = pydicom.uid.generate_uid()
    for path in files:  # a second series: same pixels, its own UIDs
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.SeriesNumber = other_uid, 99
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(flat / f"other_{path.name}")
    victim = flat / f"other_{files[len(files) // 2].name}"
    victim.write_bytes(victim.read_bytes()[:1200])  # the header up to and past SeriesInstanceUID
    series, skipped = find_series(flat)
    assert [s.series_number for s in series] != ["99"] and len(series) == 1
    (failed,) = skipped
    assert failed.failed and victim.name in failed.reason and "truncated" in failed.reason


def test_a_folder_that_cannot_be_listed_is_a_failed_row(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing errors as the OS reports them (a root test user can list any folder, so the error is
    injected into ``os.scandir``, which ``os.walk`` uses)."""
    root = tmp_path / "export"
    copy_series(shared_data, "mr_uncompressed", root / "readable")
    (root / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    results = convert_folder(root, tmp_path / "out")
    by_status = {r.status: r for r in results}
    assert set(by_status) == {"written", "failed"}
    assert "locked" in by_status["failed"].detail and "Permission denied" in by_status["failed"].detail


def test_a_folder_without_read_permission_is_a_failed_row(shared_data: Path, tmp_path: Path) -> None:
    """``scseg convert`` as a normal user (root with its capabilities dropped): the unreadable
    folder is a failed row, the readable series is written, exit code 5, no traceback."""
    root, out = tmp_path / "export", tmp_path / "out"
    copy_series(shared_data, "mr_uncompressed", root / "readable")
    copy_series(shared_data, "mr_uncompressed", root / "locked")
    (root / "locked").chmod(0)
    try:
        result = subprocess.run(
            unprivileged([sys.executable, "-m", "scseg", "convert", str(root), str(out)]),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        (root / "locked").chmod(0o755)
    assert "Traceback" not in result.stderr and result.returncode == 5, result.stderr
    text = " ".join(result.stdout.split())
    assert "written" in text and "failed" in text and "Permission denied" in text, result.stdout
    assert len(list(out.rglob("*.nii.gz"))) == 1, "the readable series is converted"


def test_declared_sizes_beyond_memory_are_refused_before_allocating(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed series whose headers all declare 65535 x 65535: GDCM would try to allocate it.
    Refused by the voxel limit; with the limit raised, by the memory available."""
    files = copy_series(shared_data, "ct_jpeg2000", tmp_path / "series")
    declare_size(files, 65535)
    result = _only_result(tmp_path / "series", tmp_path / "out")
    assert result.status == "failed"
    assert "declares a 20 x 65535 x 65535 image" in result.detail and "SCSEG_MAX_VOXELS" in result.detail
    monkeypatch.setenv("SCSEG_MAX_VOXELS", str(10**15))
    result = _only_result(tmp_path / "series", tmp_path / "out2")
    assert result.status == "failed"
    assert (
        "declares a 20 x 65535 x 65535 image" in result.detail and "of memory is available" in result.detail
    )
