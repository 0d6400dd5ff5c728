"""Several passes per volume: test-time mirroring, ensembles, MC dropout, and their uncertainty."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from scseg.artefact import LoadedModel, ModelSpec, NetworkSpec, build_network, load_model
from scseg.artefact.test_time import allowed_mirroring
from scseg.config import config_from_dict
from scseg.engine.inference import inferer_for
from scseg.engine.passes import mirrorings
from scseg.engine.predictor import Predictor
from scseg.engine.uncertainty import structure_uncertainty
from scseg.errors import ConfigError

PAIRED = ["Left-x", "Right-x", "middle"]


def _config(**sections):
    raw = {
        "data": {"root": ".", "label_names": PAIRED},
        "preprocessing": {"orientation": "RAS", "intensity": {"kind": "zscore", "nonzero": False}},
        "mode": {"type": "3d", "patch_size": [16, 16, 16]},
        "model": {"name": "unet", "base_features": 4, "norm": "batch", "se": "scse"},
        "augmentation": {"flip_axes": "lr"},
        "inference": {"overlap": 0.25, "sw_batch_size": 1},
    }
    raw.update(sections)
    return config_from_dict(raw, check_data=False)


def _model(spec: ModelSpec, seed: int) -> LoadedModel:
    torch.manual_seed(seed)
    weights = build_network(spec.network).state_dict()
    return LoadedModel(spec, weights, source=Path(f"seed{seed}"), weights_file=Path(f"seed{seed}.pt"))


def _image(seed: int = 0) -> nib.Nifti1Image:
    data = np.random.default_rng(seed).normal(size=(20, 18, 16)).astype(np.float32)
    data[4:9] += 2.0  # something asymmetric along the left-right axis
    return nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0]))


def _probabilities(prediction) -> torch.Tensor:
    return torch.from_numpy(prediction.probabilities.get_fdata(dtype=np.float32)).permute(3, 0, 1, 2)


def test_allowed_mirroring_follows_the_training_augmentation() -> None:
    lr = allowed_mirroring(_config())
    assert (lr.mirror_axes, lr.lr_axis, lr.lr_swap) == ([0], 0, [0, 2, 1, 3])
    # the hippocampus recipe: left-right flips of a label set without pairs, no swap
    plain = allowed_mirroring(_config(data={"root": ".", "label_names": ["anterior", "posterior"]},
                                      augmentation={"flip_axes": [0]}))  # fmt: skip
    assert (plain.mirror_axes, plain.lr_swap) == ([0], None)
    assert allowed_mirroring(_config(augmentation={"enabled": False})).mirror_axes == []
    assert allowed_mirroring(_config(augmentation={"flip_prob": 0.0})).mirror_axes == []
    assert allowed_mirroring(_config(augmentation={})).mirror_axes == [0, 1, 2]
    # a coronal 2D model's in-plane axes are the volume's 0 and 2
    coronal = _config(mode={"type": "2d", "patch_size": [16, 16], "slice_axis": "coronal"},
                      augmentation={"flip_axes": [0, 1]})  # fmt: skip
    assert allowed_mirroring(coronal).mirror_axes == [0, 2]
    # three views: the left-right axis is allowed (the sagittal view only reorders its slices)
    views = [{"axis": a, "weight": 1.0} for a in ("coronal", "axial", "sagittal")]
    fused = allowed_mirroring(_config(mode={"type": "2d", "patch_size": [16, 16], "views": views}))
    assert (fused.mirror_axes, fused.lr_swap) == ([0], [0, 2, 1, 3])


def test_mirrorings_cover_every_combination() -> None:
    assert mirrorings([]) == [()]
    assert len(mirrorings([0, 1, 2])) == 8 and mirrorings([0, 1, 2])[-1] == (0, 1, 2)


def test_tta_with_a_left_right_swap_equals_the_hand_computed_average() -> None:
    spec = ModelSpec.from_config(_config())
    model = _model(spec, seed=1)
    predictor = Predictor(model, device="cpu", precision="float32", tta=True)
    assert predictor.passes == 2
    image = _image()
    prediction = predictor.predict(image, probabilities=True)
    # by hand: the network on the volume and on its left-right mirror, mirrored back, classes 1 <-> 2
    x = predictor._preprocess(image).as_tensor()[None]
    inferer = inferer_for(spec)
    plain = inferer(x, predictor.model)[0]
    mirrored = inferer(x.flip(2), predictor.model)[0].flip(1)
    expected = (plain + mirrored[[0, 2, 1, 3]]) / 2
    torch.testing.assert_close(_probabilities(prediction), expected, atol=1e-5, rtol=1e-5)
    # the swap matters: without it the average is another one
    assert not torch.allclose(_probabilities(prediction), (plain + mirrored) / 2, atol=1e-3)
    assert prediction.passes == 2 and prediction.uncertainty is not None


def test_ensemble_equals_the_mean_of_its_members() -> None:
    single = ModelSpec.from_config(_config())
    members = [_model(single, seed=s) for s in (1, 2)]
    spec = single.model_copy(deep=True)
    spec.network = NetworkSpec(
        name="ensemble", spatial_dims=3, in_channels=1, out_channels=4,
        options={"members": [{"name": "unet", "options": single.network.options}] * 2},
    )  # fmt: skip
    weights = {f"members.{i}.{k}": v for i, m in enumerate(members) for k, v in m.weights.items()}
    ensemble = Predictor(
        LoadedModel(spec, weights, source=None, weights_file=None), device="cpu", precision="float32"
    )  # type: ignore[arg-type]
    image = _image(3)
    result = ensemble.predict(image, probabilities=True)
    expected = (
        sum(
            _probabilities(Predictor(m, device="cpu", precision="float32").predict(image, probabilities=True))
            for m in members
        )
        / 2
    )
    torch.testing.assert_close(_probabilities(result), expected, atol=1e-5, rtol=1e-5)
    assert result.passes == 2 and ensemble.pass_kind == "ensemble"
    assert any(s.uncertainty > 0 for s in result.uncertainty)  # two random networks disagree


def test_uncertainty_is_zero_when_every_pass_agrees(phantom_run_3d, phantom_root) -> None:
    trained = load_model(phantom_run_3d)
    spec = trained.spec.model_copy(deep=True)
    spec.network = NetworkSpec(
        name="ensemble", spatial_dims=3, in_channels=1, out_channels=4,
        options={"members": [{"name": trained.spec.network.name, "options": trained.spec.network.options}] * 3},
    )  # fmt: skip
    weights = {f"members.{i}.{k}": v for i in range(3) for k, v in trained.weights.items()}
    predictor = Predictor(LoadedModel(spec, weights, source=None, weights_file=None), device="cpu")  # type: ignore[arg-type]
    image = nib.load(phantom_root / "imagesTr" / "phantom_002.nii.gz")
    prediction = predictor.predict(image, uncertainty_map=True)
    assert [s.uncertainty for s in prediction.uncertainty] == [0.0, 0.0, 0.0]  # all three found, agreed
    assert [s.volume_cv for s in prediction.uncertainty] == [0.0, 0.0, 0.0]
    assert prediction.uncertainty_map.shape == image.shape
    assert float(prediction.uncertainty_map.get_fdata().max()) == 0.0


def test_structure_uncertainty_by_hand() -> None:
    a = torch.tensor([1, 1, 1, 1, 0, 0, 2, 0])
    b = torch.tensor([1, 1, 1, 0, 0, 0, 2, 2])
    c = torch.tensor([1, 1, 0, 0, 1, 0, 2, 0])
    scores = structure_uncertainty([a, b, c], ["one", "two", "three"], [5, 6, 7])
    # one: all three at voxels 0-1 (2), any at 0-4 (5); volumes 4, 3, 3
    assert scores[0].uncertainty == pytest.approx(1 - 2 / 5)
    assert scores[0].volume_cv == pytest.approx(np.std([4, 3, 3]) / np.mean([4, 3, 3]))
    # two: all at voxel 6, any at 6-7
    assert scores[1].uncertainty == pytest.approx(0.5)
    # three: found by no pass: no score (a miss must not look certain)
    assert np.isnan(scores[2].uncertainty) and np.isnan(scores[2].volume_cv) and scores[2].label_value == 7


def test_mc_dropout_samples_differ_and_needs_dropout() -> None:
    config = _config(model={"name": "unet", "base_features": 4, "norm": "batch", "dropout": 0.3})
    spec = ModelSpec.from_config(config)
    predictor = Predictor(_model(spec, seed=6), device="cpu", precision="float32", mc_dropout=3)
    assert predictor.passes == 3 and predictor.pass_kind == "mc_dropout"
    image = _image(6)
    sampled = [_probabilities(predictor.predict(image, probabilities=True)) for _ in range(2)]
    plain = Predictor(predictor.artefact, device="cpu", precision="float32").predict(
        image, probabilities=True
    )
    assert not torch.allclose(sampled[0], sampled[1])  # dropout was active: every call samples anew
    assert not torch.allclose(sampled[0], _probabilities(plain))
    assert not any(m.training for m in predictor.model.modules())  # and switched off again
    with pytest.raises(ConfigError, match="no dropout layers"):
        Predictor(_model(ModelSpec.from_config(_config()), seed=6), device="cpu", mc_dropout=3)
