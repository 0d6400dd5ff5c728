"""Faults a normal user meets, tried as one: the suite runs as root here, and root reads any file, so
these commands run with every capability dropped (``setpriv``), where file permissions apply again."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

from tests.unprivileged import unprivileged


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open() as f:
        return {Path(r["source"]).name: r for r in csv.DictReader(f)}


def test_unreadable_inputs_fail_alone_and_the_rest_of_the_batch_is_done(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    """Issue 44: a series folder without read permission stopped the whole batch with a traceback
    (the check for a result folder's marker raised) and no summary.csv."""
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for i in range(2):
        shutil.copy(phantom_root / "imagesTr" / f"phantom_{i:03d}.nii.gz", source / f"case_{i}.nii.gz")
    shutil.copytree(phantom_root / "dicom" / "phantom_000", source / "locked_series")
    shutil.copytree(phantom_root / "dicom" / "phantom_000", source / "series_with_a_locked_file")
    shutil.copy(phantom_root / "imagesTr" / "phantom_002.nii.gz", source / "locked.nii.gz")
    one_slice = sorted((source / "series_with_a_locked_file").iterdir())[3]
    for path, mode in ((source / "locked_series", 0), (source / "locked.nii.gz", 0), (one_slice, 0)):
        path.chmod(mode)
    try:
        result = subprocess.run(
            unprivileged([sys.executable, "-m", "scseg", "predict", "-m", str(phantom_run_3d), "-i", str(source),
                          "-o", str(out), "--device", "cpu"]),
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        for path in (source / "locked_series", source / "locked.nii.gz", one_slice):
            path.chmod(0o755)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 5, result.stderr  # some cases failed: the summary says which
    rows = _rows(out)
    assert rows["case_0.nii.gz"]["status"] == "done" and rows["case_1.nii.gz"]["status"] == "done"
    for failed in ("locked_series", "locked.nii.gz", "series_with_a_locked_file"):
        assert rows[failed]["status"] == "failed", rows[failed]
        assert "cannot be read (Permission denied)" in rows[failed]["message"], rows[failed]
    assert "a slice may be missing" in rows["series_with_a_locked_file"]["message"], (
        "never segmented incomplete"
    )
    left = sorted(p.name for p in out.iterdir())
    assert left == [".scseg.lock", "case_0", "case_1", "summary.csv"], "no half-written case, no temporary"
