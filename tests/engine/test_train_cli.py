"""``scseg train`` from the command line: exit codes and one-paragraph errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _scseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scseg", *args], capture_output=True, text=True, timeout=300)


def _assert_clean_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in " ".join(result.stderr.split()), result.stderr


def test_unknown_config_key_exits_2(tiny_config: dict, write_config) -> None:
    path = write_config(tiny_config)
    _assert_clean_error(
        _scseg("train", str(path), "--out", "x", "--set", "train.epochz=3"), 2, "train.epochz", "unknown key"
    )


def test_resume_of_missing_run_dir_exits_4(tiny_config: dict, write_config, tmp_path: Path) -> None:
    path = write_config(tiny_config)
    _assert_clean_error(
        _scseg("train", str(path), "--out", str(tmp_path / "none"), "--resume"), 4, "does not exist"
    )


def test_missing_image_file_exits_3(tiny_config: dict, write_config, tmp_path: Path) -> None:
    csv_path = tmp_path / "cases.csv"
    root = Path(tiny_config["data"]["root"])
    csv_path.write_text(f"image,label\n{root}/imagesTr/gone.nii.gz,{root}/labelsTr/phantom_001.nii.gz\n")
    tiny_config["data"] |= {"root": str(tmp_path), "dataset": "cases.csv"}
    _assert_clean_error(
        _scseg("train", str(write_config(tiny_config)), "--out", str(tmp_path / "r")),
        3,
        "gone.nii.gz does not exist",
    )


def test_unreadable_dicom_folder_exits_3(tiny_config: dict, write_config, tmp_path: Path) -> None:
    root = Path(tiny_config["data"]["root"])
    broken = tmp_path / "broken_series"
    broken.mkdir()
    (broken / "slice1.dcm").write_bytes(b"DICM but not really" * 10)
    rows = [f"{broken},{root}/labelsTr/phantom_001.nii.gz"]
    rows += [
        f"{root}/imagesTr/phantom_00{i}.nii.gz,{root}/labelsTr/phantom_00{i}.nii.gz" for i in range(2, 6)
    ]
    (tmp_path / "cases.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    tiny_config["data"] |= {
        "root": str(tmp_path),
        "dataset": "cases.csv",
        "split": {"train": ["broken_series", "phantom_002"], "val": ["phantom_003"]},
    }
    result = _scseg("train", str(write_config(tiny_config)), "--out", str(tmp_path / "r"))
    _assert_clean_error(result, 3, "training data")
    assert not (tmp_path / "r" / "checkpoints").exists()


@pytest.mark.slow
def test_demo_reaches_dice_above_0_8(tmp_path: Path) -> None:
    result = _scseg("demo", "--out", str(tmp_path / "demo"), "--set", f"data.root={tmp_path / 'data'}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "dicom" / "phantom_000").is_dir(), "one demo image is read from DICOM"
    import csv

    rows = list(csv.DictReader((tmp_path / "demo" / "metrics.csv").open()))
    last = rows[-1]
    dice = {k[5:]: float(v) for k, v in last.items() if k.startswith("dice_")}
    assert set(dice) == {"ventricle", "lesion", "rim"}
    assert min(dice.values()) > 0.8, dice
    assert float(last["elapsed_min"]) < 3.0
