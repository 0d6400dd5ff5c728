"""A trained model travels: trained on a private copy of the data, the data deleted, the run directory
moved; then every way of using the model works from the artefact alone (issue 13's sequence)."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from scseg.data.phantom import make_phantom_dataset
from tests.conftest import TINY
from tests.prediction_helpers import dice

pytestmark = pytest.mark.slow


def _scseg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "scseg", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )
    assert result.returncode == 0, (
        f"scseg {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result


def _labels(folder: Path) -> np.ndarray:
    (path,) = folder.glob("*/labels.nii.gz")
    return np.asanyarray(nib.load(path).dataobj)


def test_a_moved_model_predicts_exports_serves_and_evaluates_without_its_data(tmp_path: Path) -> None:
    # train on a private copy of the data ...
    data = tmp_path / "private_data"
    make_phantom_dataset(data, n_cases=10, shape=(32, 32, 32), seed=1)
    keep = tmp_path / "kept"  # one case and a second copy of the data, for the checks below
    shutil.copytree(data, keep / "data")
    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = str(data)
    raw["model"]["base_features"] = 8
    raw["optimizer"] = {"name": "adamw", "lr": 0.01}
    raw["train"].update(max_epochs=60, val_interval=60)
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(raw))
    _scseg("train", str(tmp_path / "train.yaml"), "--out", str(tmp_path / "run"), cwd=tmp_path)
    # ... delete the data, move the run directory
    shutil.rmtree(data)
    model = tmp_path / "elsewhere" / "model"
    model.parent.mkdir()
    shutil.move(tmp_path / "run", model)
    work = tmp_path / "work"
    images = work / "images"
    images.mkdir(parents=True)
    shutil.copyfile(keep / "data/imagesTr/phantom_004.nii.gz", images / "case.nii.gz")
    truth = np.asanyarray(nib.load(keep / "data/labelsTr/phantom_004.nii.gz").dataobj)

    _scseg("predict", "--model", str(model), "--input", str(images / "case.nii.gz"), "--output", "out_run",
           "--precision", "float32", cwd=work)  # fmt: skip
    from_run = _labels(work / "out_run")
    assert dice(from_run, truth, 1) > 0.6 and dice(from_run, truth, 3) > 0.6

    # a lone checkpoint is a whole model
    lone = work / "lone.pt"
    shutil.copyfile(model / "checkpoints/best.pt", lone)
    _scseg("predict", "--model", str(lone), "--input", str(images / "case.nii.gz"), "--output", "out_pt",
           "--precision", "float32", cwd=work)  # fmt: skip
    assert np.array_equal(_labels(work / "out_pt"), from_run)

    # the bundle: exported, run by MONAI, and loaded by scseg; one code path, identical labels
    _scseg("export-bundle", str(model), str(work / "bundle"), cwd=work)
    _scseg_bundle = [sys.executable, "-m", "monai.bundle", "run",
                     "--config_file", str(work / "bundle/configs/inference.json"),
                     "--bundle_root", str(work / "bundle"), "--dataset_dir", str(images),
                     "--output_dir", str(work / "out_monai")]  # fmt: skip
    monai_run = subprocess.run(_scseg_bundle, capture_output=True, text=True, timeout=600, cwd=work)
    assert monai_run.returncode == 0, monai_run.stderr[-3000:]
    assert np.array_equal(np.asanyarray(nib.load(work / "out_monai/case_seg.nii.gz").dataobj), from_run)
    _scseg("predict", "--model", str(work / "bundle"), "--input", str(images / "case.nii.gz"),
           "--output", "out_bundle", "--precision", "float32", cwd=work)  # fmt: skip
    assert np.array_equal(_labels(work / "out_bundle"), from_run)

    # evaluate, with the data given again (the config now points at the kept copy)
    raw["data"]["root"] = str(keep / "data")
    (work / "data.yaml").write_text(yaml.safe_dump(raw))
    _scseg("evaluate", "--model", str(model), "--data", str(work / "data.yaml"), "--out", "eval",
           "--precision", "float32", cwd=work)  # fmt: skip
    summary = yaml.safe_load((work / "eval/summary.json").read_text())
    assert summary["mean_dice"] > 0.5

    # MONAI Label serves it (pytest.importorskip: only where the label extra is installed)
    pytest.importorskip(
        "monailabel", reason="the label extra is not installed (scripts/setup.sh installs it)"
    )
    from tests.label.live_server import label_server, labels_of

    (work / "server").mkdir()
    with label_server([f"moved={model}"], images, work / "server") as server:
        served, params = labels_of(server.post_infer("moved", "case"), work / "server")
    assert params["label_names"] == {"ventricle": 1, "lesion": 2, "rim": 3}
    assert served.shape == truth.shape and dice(np.asanyarray(served.dataobj), truth, 3) > 0.6
