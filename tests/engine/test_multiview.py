"""Multi-view models: fusion is the weighted mean of the views, the sagittal view's merged pairs map
back onto both sides, and a multi-view run is one artefact for predict, evaluate and export-bundle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from scseg.config.load import config_from_dict
from scseg.engine.inference import ScsegInferer
from scseg.engine.multiview_training import train_views
from scseg.engine.predictor import Predictor
from scseg.errors import ConfigError, RunDirError
from scseg.nn.multiview import MultiViewNetwork
from tests.conftest import multiview_config

NET = {"name": "unet", "options": {"base_features": 4, "norm": "batch"}}


def _views(classes: list[int] | None = None) -> list[dict]:
    return [
        {"axis": "coronal", "weight": 0.7, "roi_size": [16, 16], "network": NET},
        {"axis": "sagittal", "weight": 0.3, "roi_size": [16, 16], "network": NET, "classes": classes},
    ]


def test_fusion_is_the_weighted_mean_of_the_views() -> None:
    torch.manual_seed(0)
    net = MultiViewNetwork(2, 1, 3, _views()).eval()
    volume = torch.randn(1, 1, 20, 18, 12)
    fused = ScsegInferer(2, [16, 16], overlap=0.25)(volume, net)
    coronal = ScsegInferer(2, [16, 16], overlap=0.25, slice_axis="coronal")(volume, net.nets[0])
    sagittal = ScsegInferer(2, [16, 16], overlap=0.25, slice_axis="sagittal")(volume, net.nets[1])
    torch.testing.assert_close(fused, 0.7 * coronal + 0.3 * sagittal, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="whole volumes"):
        net(torch.randn(1, 1, 16, 16))


def test_a_merged_view_votes_for_both_sides_of_a_pair() -> None:
    torch.manual_seed(0)
    net = MultiViewNetwork(2, 1, 4, _views(classes=[0, 1, 2, 1])).eval()  # classes 1 and 3 are a pair
    volume = torch.randn(1, 1, 16, 16, 16)
    fused = ScsegInferer(2, [16, 16])(volume, net)
    coronal = ScsegInferer(2, [16, 16], slice_axis="coronal")(volume, net.nets[0])
    merged = ScsegInferer(2, [16, 16], slice_axis="sagittal")(volume, net.nets[1])
    unmerged = merged[:, [0, 1, 2, 1]]
    expected = 0.7 * coronal + 0.3 * unmerged
    torch.testing.assert_close(fused, expected / expected.sum(dim=1, keepdim=True), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.sum(dim=1), torch.ones(1, 16, 16, 16))


def test_each_view_trains_as_its_own_config(tiny_config: dict, tmp_path: Path) -> None:
    config = config_from_dict(multiview_config(tiny_config), base=tmp_path)
    sagittal = config.view_config("sagittal")
    assert sagittal.mode.merge_lr_pairs and sagittal.num_classes == 3
    assert sagittal.output_names == ["Left-ventricle+Right-ventricle", "rim"]
    assert sagittal.output_values == [1, 3]
    coronal = config.view_config("coronal")
    assert (
        not coronal.mode.merge_lr_pairs and coronal.num_classes == 4 and coronal.mode.slice_axis == "coronal"
    )


@pytest.mark.slow
def test_a_multi_view_run_is_one_model_for_predict_evaluate_and_export(
    tiny_config: dict, phantom_root: Path, tmp_path: Path
) -> None:
    config = config_from_dict(multiview_config(tiny_config), base=tmp_path)
    run = tmp_path / "run"
    train_views(config, run, view="coronal")
    assert not (run / "model.yaml").exists(), "not a model until every view is trained"
    with pytest.raises(RunDirError, match="coronal trained, axial not trained yet, sagittal not trained yet"):
        Predictor(run, device="cpu")
    results = train_views(config, run, resume=True)
    assert set(results) == {"coronal", "axial", "sagittal"}
    predictor = Predictor(run, device="cpu")
    assert predictor.spec.network.name == "multiview" and predictor.label_values == [1, 2, 3]
    assert [v.classes for v in predictor.model.views] == [None, None, [0, 1, 1, 2]]
    image = nib.load(phantom_root / "imagesTr" / "phantom_003.nii.gz")
    prediction = predictor.predict(image, probabilities=True)
    assert prediction.labels.shape == image.shape
    probs = np.asanyarray(prediction.probabilities.dataobj)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-4)
    with pytest.raises(ConfigError, match="multi-view model"):
        predictor.predict(image, views=["axial"])

    moved = tmp_path / "elsewhere" / "model"
    shutil.move(run, moved)
    out = tmp_path / "bundle"
    result = subprocess.run(
        [sys.executable, "-m", "scseg", "export-bundle", str(moved), str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    again = Predictor(out, device="cpu").predict(image, probabilities=False)
    np.testing.assert_array_equal(
        np.asanyarray(again.labels.dataobj), np.asanyarray(prediction.labels.dataobj)
    )
