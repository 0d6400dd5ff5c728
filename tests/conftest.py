"""Shared fixtures: the real data folder, a tiny phantom data set and a tiny training config."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from scseg.config.schema import Config
from scseg.data.phantom import make_phantom_dataset
from scseg.paths import REPO_ROOT, shared_data_dir

CONFIGS = REPO_ROOT / "configs"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$SCSEG_DATA``). Missing: skip locally, fail under CI=true."""
    folder = shared_data_dir()
    if not folder.is_dir():
        message = f"real data folder {folder} not found (set SCSEG_DATA to point at it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires the real data: {message}")
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten small phantoms (NIfTI, the first also as a DICOM series) with a dataset.csv."""
    root = tmp_path_factory.mktemp("phantoms")
    make_phantom_dataset(root, n_cases=10, shape=(32, 32, 32), seed=1)
    return root


TINY = {
    "data": {
        "root": None,
        "dataset": "dataset.csv",
        "label_names": ["ventricle", "lesion", "rim"],
        "val_fraction": 0.2,
    },
    "preprocessing": {"intensity": {"kind": "zscore", "nonzero": False}},
    "mode": {"type": "3d", "patch_size": [16, 16, 16], "samples_per_volume": 1},
    "augmentation": {"affine_prob": 0.0},
    "model": {"name": "unet", "se": "scse", "base_features": 4, "norm": "batch"},
    "train": {"max_epochs": 2, "batch_size": 4, "val_interval": 1, "seed": 0},
    "inference": {"sw_batch_size": 2, "overlap": 0.25},
}


@pytest.fixture
def tiny_config(phantom_root: Path) -> dict:
    """A raw config dict (edit it freely) that trains in seconds on :func:`phantom_root`."""
    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = str(phantom_root)
    return raw


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a raw config dict to a YAML file and return its path."""

    def write(raw: dict, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path

    return write


def _train(raw: dict, run_dir: Path) -> Path:
    from scseg.config import config_from_dict
    from scseg.engine.trainer import train

    train(config_from_dict(raw), run_dir)
    return run_dir


@pytest.fixture(scope="session")
def phantom_run_3d(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3D scSE U-Net trained on the phantoms (~15 s) with a real resampling step (1.5 -> 1.8 mm)
    and a foreground crop, so that prediction has something to invert. Dice ~0.9 / 0.5 / 0.9."""
    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = str(phantom_root)
    raw["preprocessing"].update(spacing=[1.8, 1.8, 1.8], crop_foreground=True)
    raw["model"]["base_features"] = 8
    raw["optimizer"] = {"name": "adamw", "lr": 0.01}
    raw["train"].update(max_epochs=60, val_interval=60)
    return _train(raw, tmp_path_factory.mktemp("runs") / "phantom3d")


@pytest.fixture(scope="session")
def phantom_run_2d(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D (coronal) scSE U-Net trained on the phantoms (~12 s)."""
    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = str(phantom_root)
    raw["mode"] = {"type": "2d", "patch_size": [16, 16], "samples_per_volume": 4}
    raw["model"]["base_features"] = 8
    raw["optimizer"] = {"name": "adamw", "lr": 0.01}
    raw["train"].update(max_epochs=40, val_interval=40)
    return _train(raw, tmp_path_factory.mktemp("runs") / "phantom2d")


def data_section_config(data: dict, base: Path) -> Config:
    """A minimal 3D config around a ``data`` section (paths relative to ``base``; no data needed)."""
    from scseg.config.load import config_from_dict

    raw = {
        "data": {"root": ".", **data},
        "mode": {"type": "3d", "patch_size": [16, 16, 16]},
        "model": {"name": "unet"},
    }
    return config_from_dict(raw, base=base, check_data=False)


def multiview_config(raw: dict) -> dict:
    """``raw`` (a :data:`TINY`-like config) as a three-view 2D model whose first two structures are
    a left / right pair (merged in the sagittal view)."""
    raw = copy.deepcopy(raw)
    raw["data"]["label_names"] = ["Left-ventricle", "Right-ventricle", "rim"]
    raw["mode"] = {
        "type": "2d",
        "patch_size": [32, 32],
        "samples_per_volume": 2,
        "views": [
            {"axis": "coronal", "weight": 0.4},
            {"axis": "axial", "weight": 0.4},
            {"axis": "sagittal", "weight": 0.2},
        ],
    }
    raw["model"] = {"name": "unet", "se": "scse", "base_features": 4, "norm": "batch"}
    raw["train"] = {"max_epochs": 1, "batch_size": 8, "val_interval": 1, "seed": 0}
    return raw


@pytest.fixture(scope="session")
def phantom_run_multiview(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-view model (coronal, axial, sagittal with merged pairs) trained one epoch per view."""
    from scseg.config import config_from_dict
    from scseg.engine.multiview_training import train_views

    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = str(phantom_root)
    run = tmp_path_factory.mktemp("runs") / "multiview"
    train_views(config_from_dict(multiview_config(raw)), run)
    return run


@pytest.fixture(scope="session")
def phantom_crossval(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``scseg crossval`` of the tiny 3D config, 2 folds of the 8 training phantoms (2 epochs each):
    the folder is also the ensemble model of both folds."""
    from scseg.config import config_from_dict
    from scseg.engine.crossval import crossval

    raw = copy.deepcopy(TINY)
    raw["data"]["root"] = str(phantom_root)
    out = tmp_path_factory.mktemp("runs") / "crossval"
    crossval(config_from_dict(raw), out, folds=2)
    return out


HIPPOCAMPUS_VAL = ["hippocampus_003", "hippocampus_004", "hippocampus_006", "hippocampus_008"]


@pytest.fixture(scope="session")
def hippocampus_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small 3D scSE U-Net trained for 12 epochs on 60 real hippocampus cases (~70 s on 2 cores);
    :data:`HIPPOCAMPUS_VAL` are held out. Epochs, not a time limit, so the result does not depend on
    the machine's speed."""
    with (CONFIGS / "hippocampus_3d.yaml").open() as f:
        raw = yaml.safe_load(f)
    names = sorted(
        p.name.removesuffix(".nii.gz") for p in (shared_data / "msd_hippocampus_mri/imagesTr").iterdir()
    )
    raw["data"].update(
        root=str(shared_data / "msd_hippocampus_mri"),
        split={"train": [n for n in names if n not in HIPPOCAMPUS_VAL][:60], "val": HIPPOCAMPUS_VAL},
    )
    raw["model"]["base_features"] = 8
    raw["train"].update(max_epochs=12, time_limit_minutes=None, val_interval=12)
    return _train(raw, tmp_path_factory.mktemp("runs") / "hippocampus3d")
