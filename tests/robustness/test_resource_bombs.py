"""Headers that lie and resource bombs are refused before allocating, in a process that stays small.

Each input claims far more than it holds: a real 2^31-voxel NIfTI of a few MB of gzip, a gzip
stream inflating to 4 GiB behind a header declaring 256 KiB, a header declaring 4 GB over 1 KB of
data, a DICOM series declaring 65535 x 65535 pixels a slice, YAML nested 100000 deep or a million
keys. The refusal names the limit and the environment variable that raises it, and the child's peak
resident memory (its VmHWM, reported at exit) stays under 2 GiB.
"""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scseg.allocator import tcmalloc_environment
from scseg.config.yaml_io import parse_yaml
from scseg.errors import ConfigError, DataError
from scseg.io.nifti import load_nifti
from tests.robustness.defects import copy_series, declare_size

GIB = 1024**3
ZERO_MEMBER = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # 64 MiB of zeros in ~64 KB


def zero_bomb(header: nib.Nifti1Header, data_bytes: int) -> bytes:
    """A valid multi-member ``.nii.gz``: the header, then ``data_bytes`` of zeros (to the next 64 MiB)."""
    members = -(-data_bytes // (64 << 20))
    return gzip.compress(header.binaryblock + b"\0" * 4) + ZERO_MEMBER * members


def nifti_header(shape: tuple[int, ...], dtype: type) -> nib.Nifti1Header:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_data_offset(352)
    return header


def lying_niftis(folder: Path) -> dict[str, str]:
    """file name -> what its refusal must say."""
    folder.mkdir(parents=True)
    voxels = nifti_header((2048, 2048, 512), np.uint8)  # 2^31 voxels, all of them present
    (folder / "voxels.nii.gz").write_bytes(zero_bomb(voxels, 2**31))
    small = nifti_header((64, 64, 64), np.uint8)  # 256 KiB declared; 4 GiB inflated
    (folder / "gzip_bomb.nii.gz").write_bytes(zero_bomb(small, 4 * GIB))
    claims = nifti_header((1000, 1000, 1000), np.float32)  # 4 GB declared over 1 KB
    (folder / "claims_more.nii").write_bytes(claims.binaryblock + b"\0" * 1028)
    return {
        "voxels.nii.gz": "SCSEG_MAX_VOXELS",
        "gzip_bomb.nii.gz": "gzip bomb",
        "claims_more.nii": "a truncated copy",
    }


# The child reports its own peak (VmHWM: this process's memory since its exec) at exit. Not
# os.wait4's ru_maxrss: Linux carries the forking parent's peak into a child across exec, so under a
# full test suite every child "peaked" at pytest's 5 GiB.
PEAK_REPORTER = """
import atexit, os, runpy, sys
def report():
    with open("/proc/self/status") as status, open(os.environ["SCSEG_TEST_PEAK_FILE"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(report)
sys.argv[0] = "scseg"
runpy.run_module("scseg", run_name="__main__", alter_sys=True)
"""


def run_measured(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run ``python -m scseg *args``: exit code, stdout + stderr, peak resident memory in GiB."""
    with tempfile.TemporaryDirectory() as folder:
        peak_file = Path(folder) / "peak_kb"
        child_env = {**os.environ, **(env or {}), "SCSEG_TEST_PEAK_FILE": str(peak_file)}
        child_env = tcmalloc_environment(child_env) or child_env  # as `scseg` runs (no re-exec then)
        result = subprocess.run(
            [sys.executable, "-c", PEAK_REPORTER, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env,
        )
        peak_gib = int(peak_file.read_text()) * 1024 / GIB
    return result.returncode, result.stdout.decode("utf-8", "replace"), peak_gib


@pytest.mark.slow
def test_predict_refuses_each_lying_input_in_under_2_gib(
    phantom_run_3d: Path, shared_data: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    expected = lying_niftis(source)
    # uncompressed: the pixel data is too short for the size; JPEG 2000: only the voxel limit can tell
    declare_size(copy_series(shared_data, "mr_uncompressed", source / "mr_huge"), 65535)
    declare_size(copy_series(shared_data, "ct_jpeg2000", source / "ct_huge"), 65535)
    expected.update(mr_huge="65535 x 65535 at 16 bits needs", ct_huge="SCSEG_MAX_VOXELS")
    out = tmp_path / "out"
    code, output, peak_gib = run_measured(
        ["predict", "-m", str(phantom_run_3d), "-i", str(source), "-o", str(out), "--device", "cpu"]
    )
    assert code == 5 and "Traceback" not in output, output
    assert peak_gib < 2.0, f"peak resident memory {peak_gib:.2f} GiB"
    with (out / "summary.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(expected) and all(r["status"] == "failed" for r in rows), rows
    for name, reason in expected.items():
        (message,) = [r["message"] for r in rows if name in r["source"]]
        assert reason in message, (name, message)
    assert not list(out.rglob("labels.nii.gz"))


def test_the_voxel_limit_names_its_variable_and_can_be_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), path)
    monkeypatch.setenv("SCSEG_MAX_VOXELS", "500")
    with pytest.raises(DataError, match=r"512 voxels, and the limit is 500.*SCSEG_MAX_VOXELS"):
        load_nifti(path)
    monkeypatch.setenv("SCSEG_MAX_VOXELS", "512")
    assert load_nifti(path).shape == (8, 8, 8)
    monkeypatch.setenv("SCSEG_MAX_VOXELS", "lots")
    with pytest.raises(ConfigError, match="SCSEG_MAX_VOXELS='lots': expected a positive whole number"):
        load_nifti(path)


def test_a_gzip_bomb_is_refused_after_a_bounded_read(tmp_path: Path) -> None:
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(zero_bomb(nifti_header((16, 16, 16), np.uint8), 16 * GIB))  # 16 GiB in 16 MB
    with pytest.raises(DataError, match="gzip bomb"):
        load_nifti(path)


def test_deep_yaml_is_refused_and_the_depth_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"bomb.yaml: cannot read YAML: .*nested.*SCSEG_MAX_YAML_DEPTH"):
        parse_yaml("[" * 100_000 + "]" * 100_000, "bomb.yaml")
    nested = "[" * 100 + "1" + "]" * 100
    with pytest.raises(ConfigError, match="65 levels, and the limit is 64"):
        parse_yaml(nested, "deep.yaml")
    monkeypatch.setenv("SCSEG_MAX_YAML_DEPTH", "101")
    value = parse_yaml(nested, "deep.yaml")
    for _ in range(100):
        (value,) = value
    assert value == 1


def test_train_refuses_a_config_bomb_in_under_2_gib(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("data: " + "[" * 200_000 + "]" * 200_000 + "\n")
    keys = tmp_path / "keys.yaml"
    keys.write_text("".join(f"k{i}: {i}\n" for i in range(1_000_000)))  # 14 MB
    for config, limit in ((deep, "SCSEG_MAX_YAML_DEPTH"), (keys, "SCSEG_MAX_YAML_BYTES")):
        code, output, peak_gib = run_measured(["train", str(config), "--out", str(tmp_path / "run")])
        assert code == 2 and "Traceback" not in output and limit in output and config.name in output, output
        assert peak_gib < 2.0, f"{config.name}: peak resident memory {peak_gib:.2f} GiB"
    assert not (tmp_path / "run").exists()


def test_a_label_upload_that_is_a_gzip_bomb_is_answered_422(tmp_path: Path) -> None:
    from fastapi import HTTPException

    from scseg.label.gateway import check_label_file

    image = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 16), np.float32), np.eye(4)), image)
    upload = tmp_path / "upload_tmp123.nii.gz"
    upload.write_bytes(zero_bomb(nifti_header((16, 16, 16), np.uint8), 4 * GIB))
    with pytest.raises(HTTPException) as caught:
        check_label_file(upload, image, {1})
    assert caught.value.status_code == 422 and "gzip bomb" in caught.value.detail
    assert str(tmp_path) not in caught.value.detail and "upload_tmp123" not in caught.value.detail
