"""Cross-validation: folds by case, a resumable run, the fold table and the ensemble as one model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import pytest
import yaml
from typer.testing import CliRunner

from scseg.artefact import load_model
from scseg.bundle import export_bundle
from scseg.cli import app
from scseg.config import config_from_dict
from scseg.engine import crossval as crossval_module
from scseg.engine.crossval import crossval, fold_split
from scseg.engine.predictor import Predictor
from scseg.errors import ConfigError, RunDirError


def test_folds_are_disjoint_cover_every_case_and_follow_the_seed() -> None:
    names = [f"case_{i:02d}" for i in range(23)]
    folds = fold_split(names, 5, seed=3)
    assert sorted(n for f in folds for n in f) == names
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    assert fold_split(list(reversed(names)), 5, seed=3) == folds  # the order found does not matter
    assert fold_split(names, 5, seed=4) != folds
    with pytest.raises(ConfigError, match="at least 2 folds"):
        fold_split(names, 1, seed=0)
    with pytest.raises(ConfigError, match="only 3 cases"):
        fold_split(names[:3], 5, seed=0)


def test_crossval_writes_the_fold_table_and_an_ensemble_of_the_folds(phantom_crossval: Path) -> None:
    plan = json.loads((phantom_crossval / "crossval.json").read_text())
    vals = [f["val"] for f in plan["folds"]]
    assert len(vals) == 2 and not set(vals[0]) & set(vals[1])
    # the config's validation cases stay out of every fold, for testing the ensemble
    assert plan["held_out"] and not set(plan["held_out"]) & set(vals[0] + vals[1])
    for index, fold in enumerate(plan["folds"]):
        fold_config = yaml.safe_load((phantom_crossval / f"fold_{index}" / "config.yaml").read_text())
        assert fold_config["data"]["split"]["val"] == fold["val"]
    with open(phantom_crossval / "folds.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["fold"] for r in rows] == ["0", "1", "mean"]
    assert set(rows[0]) == {"fold", "ventricle", "lesion", "rim", "mean"}
    mean_rim = (float(rows[0]["rim"]) + float(rows[1]["rim"])) / 2
    assert float(rows[2]["rim"]) == pytest.approx(mean_rim, abs=1e-4)
    ensemble = load_model(phantom_crossval)
    assert ensemble.spec.network.name == "ensemble" and len(ensemble.spec.network.options["members"]) == 2
    assert ensemble.spec.provenance.validation_dice["rim"] == pytest.approx(mean_rim, abs=1e-4)


def test_the_ensemble_predicts_exports_and_reloads_as_one_model(
    phantom_crossval: Path, phantom_root: Path, tmp_path: Path
) -> None:
    image = nib.load(phantom_root / "imagesTr" / "phantom_001.nii.gz")
    predictor = Predictor(phantom_crossval, device="cpu")
    assert (predictor.passes, predictor.pass_kind) == (2, "ensemble")
    prediction = predictor.predict(image)
    assert prediction.labels.shape == image.shape and prediction.uncertainty is not None
    bundle = export_bundle(phantom_crossval, tmp_path / "bundle")
    again = Predictor(bundle, device="cpu").predict(image)
    assert (again.labels.get_fdata() == prediction.labels.get_fdata()).all()


def test_a_stopped_crossval_resumes_and_a_changed_plan_is_refused(
    tiny_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_config["train"].update(max_epochs=1, batch_size=3)  # 5-6 training cases per fold: no batch of 1
    config = config_from_dict(tiny_config)
    out = tmp_path / "cv"
    real = crossval_module._train_fold

    def stop_at_fold_1(fold_config, fold_dir: Path) -> None:
        if fold_dir.name == "fold_1":
            raise KeyboardInterrupt
        real(fold_config, fold_dir)

    monkeypatch.setattr(crossval_module, "_train_fold", stop_at_fold_1)
    with pytest.raises(KeyboardInterrupt):
        crossval(config, out, folds=3)
    assert not (out / "model.yaml").exists()
    first = (out / "fold_0" / "checkpoints" / "best.pt").stat().st_mtime_ns
    monkeypatch.setattr(crossval_module, "_train_fold", real)
    result = CliRunner().invoke(
        app, ["crossval", str(_write(tiny_config, tmp_path)), "--out", str(out), "--folds", "3"],
        terminal_width=200,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "validation Dice per fold" in result.output and "mean" in result.output
    assert (out / "fold_0" / "checkpoints" / "best.pt").stat().st_mtime_ns == first  # kept, not retrained
    assert len(load_model(out).spec.network.options["members"]) == 3
    with pytest.raises(RunDirError, match="other folds"):
        crossval(config, out, folds=2)


def _write(raw: dict, folder: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
