"""The loop's parts without a server: training options, the held-aside split, next-sample
strategies, the per-image uncertainty score and renaming a 3D Slicer label by its names."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the label extra is not installed (scripts/setup.sh installs it)")
pytest.importorskip("psutil", reason="the label extra is not installed (scripts/setup.sh installs it)")

from fastapi import HTTPException

from scseg.engine.predictor import Prediction
from scseg.engine.uncertainty import StructureUncertainty
from scseg.label.active_learning import image_score, next_sample
from scseg.label.saved_labels import renumber_by_name
from scseg.label.training import TrainOptions, held_aside


def test_training_options_defaults_and_refusals() -> None:
    options = TrainOptions.parse({"epochs": 5, "lr": 0.01, "client_id": "slicer"})
    assert (options.epochs, options.lr, options.tag, options.original) == (5, 0.01, "final", False)
    assert TrainOptions.parse(None) == TrainOptions()
    for params, key in (
        ({"epochs": 0}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"lr": float("nan")}, "lr"),
        ({"tag": "../x"}, "tag"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"bundle_path": "/tmp"}, "bundle_path"),
    ):
        with pytest.raises(HTTPException) as err:
            TrainOptions.parse(params)
        assert err.value.status_code == 422 and key in str(err.value.detail)
    with pytest.raises(HTTPException, match="JSON object"):
        TrainOptions.parse([1])


def test_held_aside_images_depend_on_the_ids_not_the_order() -> None:
    ids = [f"case_{i:03d}" for i in range(40)]
    assert [len(held_aside(ids[:n], 0.2)) for n in (2, 3, 10, 40)] == [1, 1, 2, 8]
    assert held_aside(list(reversed(ids[:10])), 0.2) == held_aside(ids[:10], 0.2)
    assert len(held_aside(ids[:2], 0.99)) == 1, "one image always trains"
    kept = held_aside(ids[:20], 0.2) & held_aside(ids, 0.2)
    assert kept, "labelling more keeps (most of) the earlier held-aside images"


def test_strategies_pick_among_unlabelled_images() -> None:
    unlabelled = ["c", "a", "b", "d"]
    scores = {"a": 0.1, "b": 0.7, "c": 0.3}
    assert next_sample("first", unlabelled, scores) == ("a", 0.1)
    assert next_sample("uncertainty", unlabelled, scores) == ("b", 0.7)
    assert next_sample("uncertainty", unlabelled, {}) == ("a", None), "unscored: by id"
    assert next_sample("uncertainty", ["d", "a"], scores) == ("a", 0.1), "scored before unscored"
    assert next_sample("random", unlabelled, scores, seed=3)[0] in unlabelled
    assert {next_sample("random", unlabelled, {}, seed=s)[0] for s in range(20)} == set(unlabelled)
    with pytest.raises(HTTPException, match="uncertainty"):
        next_sample("cleverest", unlabelled, scores)


def _prediction(labels: np.ndarray, probabilities: np.ndarray | None = None, scores=None) -> Prediction:
    affine = np.eye(4)
    return Prediction(
        nib.Nifti1Image(labels, affine),
        None if probabilities is None else nib.Nifti1Image(probabilities, affine),
        uncertainty=scores,
    )


def test_image_score_from_passes_and_from_one_pass_probabilities() -> None:
    labels = np.zeros((4, 4, 4), np.int16)
    scores = [
        StructureUncertainty("a", 1, 0.2, 0.1),
        StructureUncertainty("b", 2, float("nan"), float("nan")),
    ]
    assert image_score(_prediction(labels, scores=scores)) == pytest.approx(0.6), (
        "a missed structure counts 1"
    )
    probabilities = np.zeros((4, 4, 4, 2), np.float32)
    probabilities[..., 0] = 1.0
    assert image_score(_prediction(labels, probabilities)) == 1.0, "nothing found: least sure"
    labels[:2] = 1
    probabilities[:2, ..., 0], probabilities[:2, ..., 1] = 0.2, 0.8
    assert image_score(_prediction(labels, probabilities)) == pytest.approx(0.2)


def test_a_slicer_label_is_renumbered_to_the_models_values_by_name(tmp_path: Path) -> None:
    """3D Slicer numbers segments 1..N in its list order and names them in ``label_info``."""
    data = np.zeros((6, 6, 6), np.uint8)
    data[:2], data[4:] = 1, 2
    path = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    known = {"Left-Hippocampus": 17, "Right-Hippocampus": 53}
    info = [{"name": "Right-Hippocampus", "idx": 1}, {"name": "Left-Hippocampus", "idx": 2}]
    renumber_by_name(path, info, known)
    out = np.asanyarray(nib.load(path).dataobj)
    assert set(np.unique(out[:2])) == {53} and set(np.unique(out[4:])) == {17} and not out[2:4].any()
    with pytest.raises(HTTPException, match="Amygdala"):
        renumber_by_name(path, [{"name": "Amygdala", "idx": 1}], known)
    with pytest.raises(HTTPException, match="label_info"):
        renumber_by_name(path, {"name": "x"}, known)
