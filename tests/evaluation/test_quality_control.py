"""Uncertainty against Dice, the calibrated QC threshold, and predict's QC columns and outputs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from scseg.cli import app
from scseg.engine.predictor import Predictor
from scseg.errors import ConfigError
from scseg.evaluation.evaluate import evaluate_model
from scseg.evaluation.quality_control import UncertaintyPoint, calibrate_threshold, correlations


def _points(pairs: list[tuple[float, float]]) -> list[UncertaintyPoint]:
    return [UncertaintyPoint(f"c{i}", "s", u, d) for i, (u, d) in enumerate(pairs)]


def test_the_threshold_separates_failures_from_good_structures() -> None:
    points = _points([(0.02, 0.95), (0.05, 0.9), (0.3, 0.8), (0.35, 0.6), (0.5, 0.4), (0.7, 0.2)])
    qc = calibrate_threshold(points, dice_cutoff=0.7, passes="tta")
    assert 0.3 < qc.threshold < 0.35
    assert (qc.sensitivity, qc.false_alarms, qc.cases) == (1.0, 0.0, 6)
    assert qc.correlation == pytest.approx(-1.0)
    # no failure on validation: only cases less certain than all of them get flagged
    calm = calibrate_threshold(_points([(0.1, 0.9), (0.2, 0.85)]), dice_cutoff=0.7, passes="tta")
    assert calm.threshold == pytest.approx(0.2) and calm.sensitivity is None
    # absent-in-both structures (Dice NaN) and structures no pass found (no uncertainty) do not count
    nan = float("nan")
    report = correlations(_points([(0.1, 0.9), (0.2, nan), (nan, 0.0), (0.3, 0.5), (0.4, 0.3)]))
    assert report["points"] == 3 and report["spearman"] == pytest.approx(-1.0)


def test_evaluate_with_tta_reports_uncertainty_and_stores_the_qc_threshold(
    phantom_run_3d: Path, phantom_root: Path, tiny_config: dict, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(phantom_run_3d, model)  # calibration writes into the model
    from scseg.config import config_from_dict

    config = config_from_dict(tiny_config)
    with pytest.raises(ConfigError, match="needs an uncertainty"):
        evaluate_model(model, config, tmp_path / "plain", device="cpu", calibrate_qc=True, progress=False)
    result = evaluate_model(
        model, config, tmp_path / "ev", device="cpu", tta=True, calibrate_qc=True, progress=False
    )
    with open(tmp_path / "ev" / "uncertainty.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3  # 2 validation phantoms x 3 structures
    assert all(0.0 <= float(r["uncertainty"]) <= 1.0 for r in rows)
    assert (tmp_path / "ev" / "uncertainty_vs_dice.png").stat().st_size > 0
    stored = yaml.safe_load((model / "model.yaml").read_text())["qc"]
    assert stored["threshold"] == pytest.approx(result.uncertainty["qc"]["threshold"])
    assert stored["passes"] == "tta" and stored["cases"] == 2
    assert stored["expected"] == ["ventricle", "lesion", "rim"]  # in every validation phantom
    assert Predictor(model, device="cpu").qc_threshold == pytest.approx(stored["threshold"])
    assert Predictor(model, device="cpu", qc_threshold=0.5).qc_threshold == 0.5  # the option wins


def test_predict_with_tta_writes_uncertainty_and_flags_cases(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    image = phantom_root / "imagesTr" / "phantom_003.nii.gz"
    runner = CliRunner()
    args = ["predict", "--model", str(phantom_run_3d), "--input", str(image), "--device", "cpu"]
    refused = runner.invoke(app, [*args, "--output", str(tmp_path / "no"), "--uncertainty-map"])
    assert refused.exit_code == 2 and "needs several passes" in refused.output
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [*args, "--output", str(out), "--tta", "--uncertainty-map", "--qc-threshold", "0"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    with open(out / "summary.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["qc"] == "flagged" and "uncertainty above the QC threshold 0.00" in row["message"]
    with open(out / "phantom_003" / "volumes.csv") as f:
        volumes = {r["structure"]: r for r in csv.DictReader(f)}
    worst = max(float(v["uncertainty"]) for v in volumes.values())
    assert float(row["uncertainty"]) == pytest.approx(worst, abs=1e-4) and worst > 0
    umap = nib.load(out / "phantom_003" / "uncertainty.nii.gz")
    assert umap.shape == nib.load(image).shape and np.allclose(umap.affine, nib.load(image).affine)
    values = umap.get_fdata()
    assert values.min() >= 0 and 0 < values.max() <= 1
    # a threshold above every score passes the case
    calm = runner.invoke(app, [*args, "--output", str(tmp_path / "calm"), "--tta", "--qc-threshold", "1"])
    assert calm.exit_code == 0, calm.output
    with open(tmp_path / "calm" / "summary.csv") as f:
        assert next(csv.DictReader(f))["qc"] == "ok"


def test_the_qc_flag_names_uncertain_and_missing_structures() -> None:
    import math

    from scseg.artefact import LoadedModel, ModelSpec, build_network
    from scseg.artefact.test_time import QualityControlSpec
    from scseg.config import config_from_dict
    from scseg.engine.predictor import Prediction
    from scseg.engine.uncertainty import StructureUncertainty

    config = config_from_dict(
        {"data": {"root": ".", "label_names": ["a", "b", "c", "d"]},
         "mode": {"type": "3d", "patch_size": [16, 16, 16]}, "model": {"name": "unet", "norm": "batch"}},
        check_data=False,
    )  # fmt: skip
    spec = ModelSpec.from_config(config)
    spec.qc = QualityControlSpec(threshold=0.3, passes="tta", dice_cutoff=0.7, cases=5, expected=["c"])
    model = LoadedModel(spec, build_network(spec.network).state_dict(), Path("m"), Path("m.pt"))
    predictor = Predictor(model, device="cpu")
    assert predictor.qc_threshold == 0.3
    scores = [StructureUncertainty("a", 1, 0.5, 0.1), StructureUncertainty("b", 2, 0.1, 0.0),
              StructureUncertainty("c", 3, math.nan, math.nan), StructureUncertainty("d", 4, math.nan, math.nan)]  # fmt: skip
    labels = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    flag = predictor.quality_flag(Prediction(labels, uncertainty=scores, passes=2))
    # a is too uncertain; c is missing though every validation case had it; d may be absent
    assert flag == (
        "uncertainty above the QC threshold 0.30: a 0.50; not found (present in every validation case): c"
    )
    assert predictor.quality_flag(Prediction(labels, uncertainty=scores[1:2], passes=2)) is None
