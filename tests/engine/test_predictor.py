"""Predictor: the run's preprocessing is replayed and inverted onto the input's own voxel grid."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from scseg.engine.predictor import Predictor
from scseg.errors import ConfigError, RunDirError
from tests.conftest import HIPPOCAMPUS_VAL
from tests.prediction_helpers import dice, lps_copy


def test_prediction_lies_on_the_input_grid_whatever_its_orientation(
    phantom_run_3d: Path, phantom_root: Path, tmp_path: Path
) -> None:
    predictor = Predictor(phantom_run_3d, device="cpu")
    image = lps_copy(phantom_root / "imagesTr/phantom_003.nii.gz", tmp_path / "image.nii.gz")
    label = lps_copy(phantom_root / "labelsTr/phantom_003.nii.gz", tmp_path / "label.nii.gz")
    assert nib.aff2axcodes(image.affine) == ("A", "L", "I")
    prediction = predictor.predict(image)
    assert prediction.labels.shape == image.shape
    np.testing.assert_allclose(prediction.labels.affine, image.affine)
    truth = np.asanyarray(label.dataobj)
    predicted = np.asanyarray(prediction.labels.dataobj)
    # spacing 1.5 -> 1.8 mm, foreground crop, RAS reorientation: all undone
    assert dice(predicted, truth, 1) > 0.6 and dice(predicted, truth, 3) > 0.6
    # the same case in its stored (RAS) orientation gives the same labels, moved back
    plain = predictor.predict(nib.load(phantom_root / "imagesTr/phantom_003.nii.gz"))
    back = plain.labels.as_reoriented(
        nib.orientations.ornt_transform(
            nib.orientations.io_orientation(plain.labels.affine),
            nib.orientations.io_orientation(image.affine),
        )
    )
    assert (np.asanyarray(back.dataobj) == predicted).mean() > 0.99


def test_probabilities_sum_to_one_and_agree_with_the_labels(phantom_run_3d: Path, phantom_root: Path) -> None:
    predictor = Predictor(phantom_run_3d, device="cpu")
    image = nib.load(phantom_root / "imagesTr/phantom_002.nii.gz")
    prediction = predictor.predict(image, probabilities=True)
    probs = prediction.probabilities.get_fdata()
    assert probs.shape == (*image.shape, 4)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-4)
    labels = np.asanyarray(prediction.labels.dataobj)
    agree = probs.argmax(axis=-1) == labels
    assert agree.mean() > 0.999  # ties (exactly equal probabilities) may go either way


def test_view_aggregation_averages_the_views(phantom_run_2d: Path, phantom_root: Path) -> None:
    predictor = Predictor(phantom_run_2d, device="cpu")
    image = nib.load(phantom_root / "imagesTr/phantom_004.nii.gz")
    single = [
        predictor.predict(image, views=[v], probabilities=True).probabilities.get_fdata()
        for v in ("axial", "coronal")
    ]
    both = predictor.predict(image, views=["axial", "coronal"], probabilities=True).probabilities.get_fdata()
    assert not np.allclose(single[0], single[1], atol=1e-3), (
        "the two views must differ for the test to mean anything"
    )
    np.testing.assert_allclose(both, (single[0] + single[1]) / 2, atol=1e-4)
    default = predictor.predict(image).labels
    truth = np.asanyarray(nib.load(phantom_root / "labelsTr/phantom_004.nii.gz").dataobj)
    assert dice(np.asanyarray(default.dataobj), truth, 3) > 0.6  # default: the training (coronal) axis


def test_views_are_checked(phantom_run_3d: Path, phantom_run_2d: Path) -> None:
    with pytest.raises(ConfigError, match="applies to 2D models"):
        Predictor(phantom_run_3d, device="cpu").check_views(["axial"])
    with pytest.raises(ConfigError, match="unknown view"):
        Predictor(phantom_run_2d, device="cpu").check_views(["oblique"])


def test_bad_run_directories_are_reported(phantom_run_3d: Path, tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="is not a model"):
        Predictor(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(phantom_run_3d, run)
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.unlink()
    with pytest.raises(RunDirError, match="expected checkpoints/best.pt or checkpoints/last.pt"):
        Predictor(run)
    (run / "checkpoints/last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunDirError, match="cannot be read"):
        Predictor(run)
    torch.save({"model": {"wrong": torch.zeros(1)}}, run / "checkpoints/last.pt")
    with pytest.raises(RunDirError, match="does not hold weights"):
        Predictor(run)


@pytest.mark.data
@pytest.mark.slow
def test_hippocampus_model_trained_in_session_segments_held_out_cases(
    hippocampus_run: Path, shared_data: Path
) -> None:
    predictor = Predictor(hippocampus_run, device="cpu")
    assert predictor.label_names == ["anterior", "posterior"]
    scores = []
    for case in HIPPOCAMPUS_VAL:
        image = nib.load(shared_data / f"msd_hippocampus_mri/imagesTr/{case}.nii.gz")
        truth = np.asanyarray(nib.load(shared_data / f"msd_hippocampus_mri/labelsTr/{case}.nii.gz").dataobj)
        labels = predictor.predict(image).labels
        assert labels.shape == image.shape and np.allclose(labels.affine, image.affine)
        scores += [dice(np.asanyarray(labels.dataobj), truth, v) for v in (1, 2)]
    assert np.mean(scores) > 0.6, scores


def test_precision_picks_the_autocast_type_per_device() -> None:
    from scseg.engine.device import cpu_has_native_bf16
    from scseg.engine.predictor import autocast_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(cpu, "float32") is None and autocast_dtype(cuda, "float32") is None
    assert autocast_dtype(cpu, "bfloat16") == torch.bfloat16
    assert autocast_dtype(cuda, "auto") == torch.float16
    assert autocast_dtype(cpu, "auto") == (torch.bfloat16 if cpu_has_native_bf16() else None)


def test_bfloat16_prediction_agrees_with_float32(phantom_run_3d: Path, phantom_root: Path) -> None:
    image = nib.load(phantom_root / "imagesTr/phantom_002.nii.gz")
    full = Predictor(phantom_run_3d, device="cpu", precision="float32").predict(image, probabilities=True)
    half = Predictor(phantom_run_3d, device="cpu", precision="bfloat16").predict(image, probabilities=True)
    assert np.asanyarray(half.probabilities.dataobj).dtype == np.float32, "accumulated in float32"
    agree = (np.asarray(full.labels.dataobj) == np.asarray(half.labels.dataobj)).mean()
    assert agree > 0.99
    with pytest.raises(ConfigError, match="--precision 'float8': expected one of"):
        Predictor(phantom_run_3d, device="cpu", precision="float8")
