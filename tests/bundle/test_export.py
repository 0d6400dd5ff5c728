"""export-bundle: a MONAI bundle that MONAI's own tools verify and run, with scseg predict's result."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from typer.testing import CliRunner

import scseg.bundle
from scseg.bundle import export_bundle
from scseg.cli import app
from scseg.engine.predictor import Predictor
from scseg.errors import RunDirError
from tests.prediction_helpers import dice, lps_copy

SCHEMA = Path(scseg.bundle.__file__).with_name("metadata_schema.json")


def _monai_bundle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "monai.bundle", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def bundle_3d(phantom_run_3d: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(phantom_run_3d, tmp_path_factory.mktemp("bundles") / "phantom3d", torchscript=True)


def test_bundle_layout_and_metadata(bundle_3d: Path, phantom_run_3d: Path) -> None:
    for rel in ("configs/metadata.json", "configs/inference.json", "configs/scseg_model.yaml",
                "configs/scseg_train_config.yaml", "models/model.pt", "models/model.ts", "docs/README.md"):  # fmt: skip
        assert (bundle_3d / rel).is_file(), rel
    meta = json.loads((bundle_3d / "configs/metadata.json").read_text())
    out = meta["network_data_format"]["outputs"]["pred"]
    assert out["channel_def"] == {"0": "background", "1": "ventricle", "2": "lesion", "3": "rim"}
    assert out["num_channels"] == 4
    assert any("Squeeze" in r for r in meta["references"])
    assert set(meta["eval_metrics"]) >= {"val_dice_ventricle", "val_mean_dice"}
    infer = json.loads((bundle_3d / "configs/inference.json").read_text())
    assert infer["network_def"]["_target_"] == "scseg.nn.nets.unet.UNet"
    assert infer["network_def"]["se"] == "scse"
    targets = [t["_target_"] for t in infer["preprocessing"]["transforms"]]
    assert targets == ["LoadImaged", "EnsureChannelFirstd", "Orientationd", "Spacingd",
                       "NormalizeIntensityd", "CropForegroundd", "CastToTyped"]  # fmt: skip
    # one inference code path: scseg predict's own inferer and inversion, by _target_
    assert infer["inferer"]["_target_"] == "scseg.engine.inference.ScsegInferer"
    assert infer["inferer"]["roi_size"] == [16, 16, 16] and infer["inferer"]["spatial_dims"] == 3
    post = [t["_target_"] for t in infer["postprocessing"]["transforms"]]
    assert post == ["scseg.engine.resample.ToInputGridd", "SaveImaged"]
    assert infer["postprocessing"]["transforms"][0]["label_values"] == [1, 2, 3]
    # state dict only (weights_only loadable), equal to the run's best weights
    weights = torch.load(bundle_3d / "models/model.pt", weights_only=True)
    best = torch.load(phantom_run_3d / "checkpoints/best.pt", weights_only=True)["model"]
    assert weights.keys() == best.keys() and all(torch.equal(weights[k], best[k]) for k in best)
    readme = (bundle_3d / "docs/README.md").read_text()
    assert "ventricle" in readme and "python -m monai.bundle run" in readme


def test_monai_verify_metadata_accepts_the_bundle_and_rejects_a_broken_one(
    bundle_3d: Path, tmp_path: Path
) -> None:
    # the official schema is a download; offline we verify against scseg's copy of the spec's fields
    schema = tmp_path / "schema.json"
    shutil.copyfile(SCHEMA, schema)
    ok = _monai_bundle("verify_metadata", "--meta_file", str(bundle_3d / "configs/metadata.json"),
                       "--filepath", str(schema))  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "metadata is verified with no error" in ok.stdout + ok.stderr
    meta = json.loads((bundle_3d / "configs/metadata.json").read_text())
    meta["network_data_format"]["outputs"]["pred"].pop("num_channels")
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta))
    bad = _monai_bundle("verify_metadata", "--meta_file", str(broken), "--filepath", str(schema))
    assert bad.returncode != 0 and "num_channels" in bad.stderr


def test_inference_config_has_monai_inference_properties(bundle_3d: Path) -> None:
    workflow = ConfigWorkflow(
        config_file=str(bundle_3d / "configs/inference.json"),
        meta_file=str(bundle_3d / "configs/metadata.json"),
        workflow_type="infer",
        bundle_root=str(bundle_3d),
    )
    workflow.initialize()
    assert not workflow.check_properties()
    assert type(workflow.network_def).__name__ == "UNet"


def _run_bundle(bundle: Path, images: Path, out: Path) -> None:
    result = _monai_bundle("run", "--config_file", str(bundle / "configs/inference.json"),
                           "--bundle_root", str(bundle), "--dataset_dir", str(images),
                           "--output_dir", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_monai_bundle_run_equals_scseg_predict(
    bundle_3d: Path, phantom_run_3d: Path, phantom_run_2d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    # a non-RAS copy: the bundle must undo orientation, resampling and cropping like scseg predict
    image = lps_copy(phantom_root / "imagesTr/phantom_003.nii.gz", images / "case.nii.gz")
    label = lps_copy(phantom_root / "labelsTr/phantom_003.nii.gz", tmp_path / "label.nii.gz")
    bundle_2d = export_bundle(phantom_run_2d, tmp_path / "bundle2d")
    for run, bundle in ((phantom_run_3d, bundle_3d), (phantom_run_2d, bundle_2d)):
        out = tmp_path / f"out_{bundle.name}"
        _run_bundle(bundle, images, out)
        written = nib.load(out / "case_seg.nii.gz")
        assert written.shape == image.shape
        np.testing.assert_allclose(written.affine, image.affine, atol=1e-5)
        ours = np.asanyarray(Predictor(run, device="cpu", precision="float32").predict(image).labels.dataobj)
        theirs = np.asanyarray(written.dataobj)
        # the same components in float32 (as the bundle runs): identical label maps
        assert np.array_equal(ours, theirs), bundle.name
        truth = np.asanyarray(label.dataobj)
        assert dice(theirs, truth, 3) > 0.6  # the short 2D phantom run learns the rim, not yet the ventricle
    # scseg loads the bundle like a run directory
    from_bundle = Predictor(bundle_3d, device="cpu").predict(image).labels
    from_run = Predictor(phantom_run_3d, device="cpu").predict(image).labels
    assert np.array_equal(np.asanyarray(from_bundle.dataobj), np.asanyarray(from_run.dataobj))


def test_torchscript_model_matches_the_network(bundle_3d: Path, phantom_run_3d: Path) -> None:
    traced = torch.jit.load(str(bundle_3d / "models/model.ts"))
    model = Predictor(phantom_run_3d, device="cpu").model
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-4)


def test_cli_export_bundle_and_its_errors(phantom_run_2d: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["export-bundle", str(phantom_run_2d), str(tmp_path / "b2")])
    assert result.exit_code == 0, result.output
    infer = json.loads((tmp_path / "b2/configs/inference.json").read_text())
    assert infer["inferer"]["spatial_dims"] == 2 and infer["inferer"]["slice_axis"] == "coronal"
    not_a_run = runner.invoke(app, ["export-bundle", str(tmp_path / "b2" / "docs"), str(tmp_path / "b3")])
    assert not_a_run.exit_code == 4 and "is not a model" in not_a_run.output
    inside = runner.invoke(app, ["export-bundle", str(phantom_run_2d), str(phantom_run_2d / "bundle")])
    assert inside.exit_code == 4 and "must not lie inside" in inside.output
    again = runner.invoke(app, ["export-bundle", str(tmp_path / "b2"), str(tmp_path / "b4")])
    assert again.exit_code == 4 and "bundle already" in again.output
    assert not (tmp_path / "b3").exists() and not (phantom_run_2d / "bundle").exists()


def test_export_bundle_never_overwrites_or_swallows_the_run(phantom_run_2d: Path, tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    shutil.copytree(phantom_run_2d, parent / "run")
    before = sorted(p.relative_to(parent) for p in parent.rglob("*"))
    for dest, why in ((parent, "contains the model"), (parent / "run", "must not lie inside")):
        with pytest.raises(RunDirError, match=why):
            export_bundle(parent / "run", dest)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not an empty folder"):
        export_bundle(parent / "run", tmp_path / "full")
    assert sorted(p.relative_to(parent) for p in parent.rglob("*")) == before, "the run is untouched"
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert (export_bundle(parent / "run", tmp_path / "empty") / "configs/scseg_model.yaml").is_file()
