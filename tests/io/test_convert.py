"""``scseg convert``: one NIfTI per series, a readable report, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest

from scseg.io.convert import convert_folder


@pytest.mark.data
def test_convert_writes_one_nifti_per_series_and_reports_skips(shared_data: Path, tmp_path: Path) -> None:
    results = convert_folder(shared_data / "dicom_mr_brain_tcia_btp", tmp_path / "out")
    written = [r for r in results if r.status == "written"]
    assert len(written) == 7 and not [r for r in results if r.status != "written"]
    assert len({r.output for r in written}) == 7, "two 'HippoCrop' series get distinct names"
    for r in written:
        assert (
            r.output.is_file() and r.output.relative_to(tmp_path / "out").parts[0]
        )  # <patient>/<study>/<series>
        assert len(nib.load(r.output).shape) == 3
    assert not list((tmp_path / "out").rglob(".*partial*"))
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "scseg",
            "convert",
            str(shared_data / "dicom_ct_head_gantry_tilt_dcm_qa_ct"),
            str(tmp_path / "tilt"),
        ],
        capture_output=True,
        text=True,
    )
    # a refused image series is a failure (exit 5), unlike a localizer or a SEG object (skipped)
    assert cli.returncode == 5 and "failed" in cli.stdout and "gantry tilt" in " ".join(cli.stdout.split())


def test_convert_of_a_folder_without_dicom_exits_3(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    cli = subprocess.run(
        [sys.executable, "-m", "scseg", "convert", str(tmp_path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert (
        cli.returncode == 3 and "no DICOM image series found" in cli.stderr and "Traceback" not in cli.stderr
    )
