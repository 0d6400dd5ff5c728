"""Shared fixtures: the real data folder, a tiny phantom data set and a tiny training config."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from scseg.data.paths import REPO_ROOT, shared_data_dir
from scseg.data.phantom import make_phantom_dataset

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
