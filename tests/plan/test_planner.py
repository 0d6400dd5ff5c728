"""``scseg plan``: the planner's choices on synthetic fingerprints, and a real plan end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from scseg.cli import app
from scseg.config import load_config
from scseg.config.schema import PreprocessingConfig
from scseg.data.transforms import preprocessing
from scseg.plan.fingerprint import Fingerprint
from scseg.plan.planner import config_from_choices, fit_patch, plan_choices, step_memory_gb


def _fingerprint(**changes) -> Fingerprint:
    values = {
        "cases": 40,
        "spacings": [[1.0, 1.0, 1.0]] * 40,
        "shapes": [[60, 70, 60]] * 40,
        "box_shapes": [[60, 70, 60]] * 40,
        "intensity": {
            "p00_5": 10.0,
            "p50": 300.0,
            "p99_5": 900.0,
            "mean": 320.0,
            "std": 150.0,
            "image_min": 0.0,
        },
        "zero_fraction": 0.0,
        "modality": "MR",
        "modality_reason": "test",
        "label_names": ["a", "b"],
        "label_values": [1, 2],
    }
    values.update(changes)
    return Fingerprint(**values)


def _plan(fp: Fingerprint, device: str = "cpu", memory_gb: float = 4.0) -> dict:
    choices = plan_choices(fp, budget_minutes=10, device=device, memory_gb=memory_gb)
    return config_from_choices(choices, {"root": ".", "label_names": fp.label_names})


def test_isotropic_mr_gets_a_3d_patch_from_the_median_shape_and_zscore() -> None:
    raw = _plan(_fingerprint(), device="cuda")
    assert raw["mode"]["type"] == "3d" and raw["mode"]["patch_size"] == [64, 64, 64]
    # on CPU the 10-minute budget caps a step at 500k voxels: a smaller patch, 2 per step
    cpu = _plan(_fingerprint())
    assert cpu["mode"]["patch_size"] == [48, 64, 64] and cpu["train"]["batch_size"] == 2
    assert raw["preprocessing"]["spacing"] is None  # every case has the target spacing
    assert raw["preprocessing"]["intensity"] == {"kind": "zscore", "nonzero": False}
    assert raw["augmentation"]["flip_axes"] == "lr" and raw["train"]["time_limit_minutes"] == 10


def test_anisotropic_data_is_sliced_across_its_coarse_axis() -> None:
    spacings = [[0.8, 0.8, 5.0]] * 20 + [[0.7, 0.7, 4.0]] * 20
    raw = _plan(_fingerprint(spacings=spacings, shapes=[[400, 400, 30]] * 40))
    assert raw["mode"]["type"] == "2d" and raw["mode"]["slice_axis"] == "axial"
    # the coarse axis takes its 10th percentile (nnU-Net), the others their median
    assert raw["preprocessing"]["spacing"] == [0.75, 0.75, 4.0]


def test_many_structures_get_three_fused_views_and_pairs() -> None:
    names = [f"Left-s{i}" for i in range(20)] + [f"Right-s{i}" for i in range(20)]
    fp = _fingerprint(label_names=names, label_values=list(range(1, 41)), zero_fraction=0.7,
                      box_shapes=[[40, 50, 45]] * 40, lr_pairs=[(f"Left-s{i}", f"Right-s{i}") for i in range(20)])  # fmt: skip
    raw = _plan(fp)
    assert [v["axis"] for v in raw["mode"]["views"]] == ["coronal", "axial", "sagittal"]
    # whole slices of the largest nonzero box (a foreground crop keeps it), rounded up to 16s
    assert [v["patch_size"] for v in raw["mode"]["views"]] == [[48, 48], [48, 64], [64, 48]]
    assert raw["data"]["lr_pairs"] == "auto"
    assert raw["preprocessing"]["intensity"] == {"kind": "zscore", "nonzero": True}
    assert raw["preprocessing"]["crop_foreground"] is True
    assert raw["train"]["time_limit_minutes"] == pytest.approx(10 / 3, abs=0.01)


def test_ct_is_clipped_to_foreground_percentiles_and_z_scored() -> None:
    intensity = {
        "p00_5": -120.0,
        "p50": 60.0,
        "p99_5": 280.0,
        "mean": 70.0,
        "std": 50.0,
        "image_min": -1024.0,
    }
    raw = _plan(_fingerprint(modality="CT", intensity=intensity))
    assert raw["preprocessing"]["intensity"] == {
        "kind": "ct_zscore",
        "window": [-120.0, 280.0],
        "mean": 70.0,
        "std": 50.0,
    }
    # the transform clips then z-scores: -1000 HU -> (-120 - 70) / 50, 95 HU -> 0.5
    pre = PreprocessingConfig.model_validate(
        {"orientation": None, "intensity": raw["preprocessing"]["intensity"]}
    )
    (transform,) = [
        t
        for t in preprocessing(pre, keys=("image",), load=False)
        if "ScaleIntensityRange" in type(t).__name__
    ]
    out = transform({"image": torch.tensor([[[[-1000.0, 95.0, 400.0]]]])})["image"].flatten().tolist()
    assert out == pytest.approx([-3.8, 0.5, 4.2])


def test_patch_and_batch_shrink_to_the_memory_budget() -> None:
    big = fit_patch([200.0, 200.0, 200.0], batch=2, memory_gb=1.0)
    assert step_memory_gb(big, 2) <= 1.0 and all(p % 16 == 0 for p in big)
    assert big != [208, 208, 208]
    # however small the budget, one side keeps 32 voxels (instance norm after four poolings)
    assert fit_patch([100.0, 100.0, 100.0], batch=2, memory_gb=4.0, max_voxels=100) == [16, 16, 32]
    on_gpu = _plan(_fingerprint(cases=400), device="cuda", memory_gb=40.0)["train"]["batch_size"]
    on_cpu = _plan(_fingerprint(cases=400), device="cpu", memory_gb=40.0)["train"]["batch_size"]
    assert on_cpu < on_gpu  # on CPU the time budget caps the voxels per step; on CUDA memory decides
    small = _plan(_fingerprint(cases=400, shapes=[[30, 30, 30]] * 40), device="cpu")
    assert small["train"]["batch_size"] == 8  # small patches: the CPU cap of 8


def test_plan_writes_a_commented_config_that_trains(phantom_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "planned.yaml"
    result = CliRunner().invoke(
        app, ["plan", str(phantom_root / "dataset.csv"), "--labels", "ventricle,lesion,rim", "--out", str(out),
              "--device", "cpu", "--budget-minutes", "10"], terminal_width=200,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "# Fingerprint of the data:" in text and "#   cases: 10" in text and "why" in text
    raw = yaml.safe_load(text)
    assert raw["mode"]["patch_size"] == [32, 32, 32]  # the phantoms are 32^3 at 1.5 mm
    config = load_config(out, ["train.val_interval=1", "train.time_limit_minutes=0.1"])
    assert config.data.structure_names == ["ventricle", "lesion", "rim"]
    from scseg.engine.trainer import train

    trained = train(config, tmp_path / "run")
    assert np.isfinite(trained.best_dice)


def _planned(phantom_root: Path, tmp_path: Path, labels: str) -> tuple[dict, str]:
    out = tmp_path / "planned.yaml"
    result = CliRunner().invoke(
        app, ["plan", str(phantom_root / "dataset.csv"), "--labels", labels, "--out", str(out), "--device", "cpu"],
        terminal_width=300,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return yaml.safe_load(out.read_text()), result.output


def test_plan_mirrors_only_when_every_lateral_structure_is_paired(phantom_root: Path, tmp_path: Path) -> None:
    """Issue 48: OpenKBP's RightParotid / LeftParotid were planned with mirroring and no pairs, so a
    mirrored right parotid kept its label and the model learnt no side (right parotid Dice 0.002)."""
    raw, _ = _planned(phantom_root, tmp_path, "RightParotid,LeftParotid,Mandible")
    assert raw["augmentation"] == {"flip_axes": "lr", "flip_prob": 0.5} and raw["data"]["lr_pairs"] == "auto"
    config = load_config(tmp_path / "planned.yaml")
    assert config.data.lr_classes == [(2, 1)], "LeftParotid (class 2) pairs with RightParotid (class 1)"
    from scseg.data.lr_flip import RandFlipLRd, check_lr_mirroring
    from scseg.data.transforms import _augmentation

    check_lr_mirroring(config)
    (flip,) = [t for t in _augmentation(config) if isinstance(t, RandFlipLRd)]
    assert flip.table.tolist() == [0, 2, 1, 3], "a mirror swaps the parotids and keeps the mandible"

    raw, output = _planned(phantom_root, tmp_path, "RightParotid,Parotid_L,Mandible")
    assert raw["augmentation"]["flip_prob"] == 0.0, "unpaired lateral names: no mirroring"
    why = "no left-right mirroring: RightParotid / Parotid_L look lateral but could not be paired"
    assert why in (tmp_path / "planned.yaml").read_text() and "no left-right" in output, (
        "said in the table too"
    )
    check_lr_mirroring(load_config(tmp_path / "planned.yaml"))  # the planned config trains
