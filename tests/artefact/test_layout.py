"""Reading model artefacts: run directories, bundles, lone checkpoints, and those of older scseg."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from scseg.artefact import load_checkpoint, load_model
from scseg.artefact.layout import read_model_spec
from scseg.engine.predictor import Predictor
from scseg.errors import RunDirError

# what `scseg train` wrote before model.yaml: the model section with every key, unset ones as null
OLD_MODEL_SECTION = {
    "name": "unet", "spatial_dims": None, "in_channels": 1, "se": "scse", "se_reduction": 2,
    "se_aggregation": "max", "se_positions": ["encoder", "bottleneck", "decoder"], "norm": "batch",
    "dropout": 0.0, "base_features": 8, "features": None, "depth": None, "kernel_size": None,
}  # fmt: skip


def _old_run_dir(run: Path, target: Path) -> Path:
    """A copy of ``run`` as scseg wrote it before the model artefact: config.yaml only (its data
    folder gone), checkpoints with ``config`` + ``label_names`` instead of a spec."""
    shutil.copytree(run, target)
    (target / "model.yaml").unlink()
    config = yaml.safe_load((target / "config.yaml").read_text())
    config["data"]["root"] = "/nonexistent/training/data"
    config["model"] = OLD_MODEL_SECTION
    (target / "config.yaml").write_text(yaml.safe_dump(config))
    for name in ("best.pt", "last.pt"):
        state = torch.load(target / "checkpoints" / name, weights_only=True)
        state.pop("spec")
        state.update(config=config, label_names=["ventricle", "lesion", "rim"], scseg_version="0.1.0")
        torch.save(state, target / "checkpoints" / name)
    return target


def test_run_dir_bundle_and_checkpoint_describe_the_same_model(phantom_run_3d: Path, tmp_path: Path) -> None:
    from scseg.bundle import export_bundle

    run = load_model(phantom_run_3d)
    lone = load_model(phantom_run_3d / "checkpoints/best.pt")
    bundle = load_model(export_bundle(phantom_run_3d, tmp_path / "bundle"))
    for other in (lone, bundle):
        assert other.spec.network == run.spec.network
        assert other.spec.preprocessing == run.spec.preprocessing and other.spec.labels == run.spec.labels
        assert all(torch.equal(other.weights[k], run.weights[k]) for k in run.weights)
    assert run.spec.preprocessing.spacing == (1.8, 1.8, 1.8) and run.spec.preprocessing.crop_foreground
    assert run.spec.inference.roi_size == [16, 16, 16]
    assert run.spec.versions["scseg"] and run.spec.versions["torch"] and run.spec.versions["monai"]
    assert run.epoch == load_checkpoint(phantom_run_3d / "checkpoints/best.pt").epoch


def test_an_old_run_directory_still_loads_and_predicts_the_same(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    old = _old_run_dir(phantom_run_3d, tmp_path / "old")
    image = nib.load(phantom_root / "imagesTr/phantom_002.nii.gz")
    new_labels = Predictor(phantom_run_3d, device="cpu", precision="float32").predict(image).labels
    old_predictor = Predictor(old, device="cpu", precision="float32")
    assert old_predictor.label_names == ["ventricle", "lesion", "rim"]
    assert old_predictor.spec.versions == {}, "unknown versions are not made up"
    old_labels = old_predictor.predict(image).labels
    assert np.array_equal(np.asanyarray(old_labels.dataobj), np.asanyarray(new_labels.dataobj))
    # an old checkpoint alone carries its config, so it is a whole model too
    assert load_model(old / "checkpoints/best.pt").spec.network == old_predictor.spec.network
    # an old bundle (configs/scseg_config.yaml) loads through the same rebuild
    bundle = tmp_path / "old_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "configs/metadata.json").write_text("{}")
    shutil.copyfile(old / "config.yaml", bundle / "configs/scseg_config.yaml")
    torch.save(old_predictor.model.state_dict(), bundle / "models/model.pt")
    assert load_model(bundle).spec.network == old_predictor.spec.network


def test_what_cannot_be_recovered_is_said_clearly(phantom_run_3d: Path, tmp_path: Path) -> None:
    old = _old_run_dir(phantom_run_3d, tmp_path / "old")
    config = yaml.safe_load((old / "config.yaml").read_text())
    config["model"]["name"] = "retired_architecture"
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(
        RunDirError, match=r"(?s)older scseg .* cannot be read any more.*retired_architecture"
    ):
        load_model(old)
    bare = tmp_path / "bare.pt"
    torch.save({"model": load_model(phantom_run_3d).weights}, bare)
    with pytest.raises(RunDirError, match="holds weights but no model description"):
        load_model(bare)
    with pytest.raises(RunDirError, match="is not a model"):
        load_model(tmp_path / "nothing_here")


def test_a_broken_model_yaml_names_the_file_and_key(phantom_run_3d: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(phantom_run_3d, run)
    spec = yaml.safe_load((run / "model.yaml").read_text())
    spec["labels"]["values"] = [1, 2]
    (run / "model.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(
        RunDirError, match=r"model.yaml is not a valid scseg model description: labels: .*3 names but 2"
    ):
        load_model(run)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 12)]
    bomb = tmp_path / "model.yaml"
    bomb.write_text("\n".join(lines) + "\n")  # 10^12 elements once expanded
    start = time.monotonic()
    with pytest.raises(RunDirError, match="alias bomb"):
        read_model_spec(bomb)
    assert time.monotonic() - start < 5
    bomb.write_bytes(b"# padding\n" * 500_000)
    with pytest.raises(RunDirError, match="too large"):
        read_model_spec(bomb)
