"""Training end to end on tiny phantoms: run directory, resume, time limit, no overwrites."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scseg.artefact import load_model
from scseg.config import config_from_dict
from scseg.engine.trainer import Trainer, train
from scseg.errors import RunDirError


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_training_writes_the_run_directory_and_resume_continues(tiny_config: dict, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train(config_from_dict(tiny_config), run)
    assert result.epochs == 2 and not result.stopped_by_time
    for name in (
        "config.yaml",
        "model.yaml",
        "metrics.csv",
        "curves.png",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) >= {"epoch", "train_loss", "mean_dice", "dice_ventricle", "dice_lesion", "dice_rim"}
    last = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["spec"]["labels"]["names"] == ["ventricle", "lesion", "rim"]
    assert {"model", "spec", "optimizer", "scheduler", "rng", "global_step"} <= set(last)
    spec = load_model(run).spec  # model.yaml: the best weights' epoch and Dice, the data fingerprint
    assert spec.provenance.epoch in (1, 2) and set(spec.provenance.validation_dice) == {
        "ventricle",
        "lesion",
        "rim",
    }
    assert spec.provenance.data is not None and spec.provenance.data.cases == 10
    assert spec.provenance.data.train_cases == 8 and spec.provenance.data.median_spacing == [1.5, 1.5, 1.5]

    tiny_config["train"]["max_epochs"] = 3
    resumed = train(config_from_dict(tiny_config), run, resume=True)
    assert resumed.epochs == 3
    assert [r["epoch"] for r in _rows(run)] == ["1", "2", "3"]
    assert (
        torch.load(run / "checkpoints/last.pt", weights_only=True)["global_step"]
        == 3 * last["global_step"] // 2
    )


def test_an_existing_run_is_never_overwritten(tiny_config: dict, tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny_config["train"]["max_epochs"] = 1
    train(config_from_dict(tiny_config), run)
    digest = hashlib.sha256((run / "checkpoints/last.pt").read_bytes()).hexdigest()
    with pytest.raises(RunDirError, match="already holds a training run"):
        train(config_from_dict(tiny_config), run)
    assert hashlib.sha256((run / "checkpoints/last.pt").read_bytes()).hexdigest() == digest


def test_resume_of_a_missing_run_is_an_error(tiny_config: dict, tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        train(config_from_dict(tiny_config), tmp_path / "never", resume=True)


def test_time_limit_stops_validates_and_saves(tiny_config: dict, tmp_path: Path) -> None:
    tiny_config["train"] |= {"max_epochs": 500, "time_limit_minutes": 0.05, "val_interval": 100}
    result = train(config_from_dict(tiny_config), tmp_path / "run")
    assert result.stopped_by_time and result.epochs < 500
    assert len(_rows(tmp_path / "run")) == 1, "validated once, when the limit hit"
    assert torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)["epoch"] == result.epochs


@pytest.mark.parametrize(
    ("name", "se", "extra"),
    [
        ("sdnet", "cse", {"features": 8}),
        ("densenet", "sse", {"features": 8}),
        ("unet", "pe", {}),
        (
            "resunet",
            "scse",
            {"blocks_per_stage": 1, "se_integration": "pre", "block": "bottleneck", "base_features": 8},
        ),
    ],
)
def test_each_architecture_and_se_kind_trains_in_3d(
    tiny_config: dict, tmp_path: Path, name, se, extra
) -> None:
    tiny_config["model"] = {"name": name, "se": se, "norm": "batch", **extra}
    tiny_config["train"]["max_epochs"] = 1
    result = train(config_from_dict(tiny_config), tmp_path / "run")
    assert result.epochs == 1 and set(result.final_dice) == {"ventricle", "lesion", "rim"}


def test_2d_coronal_slices_with_the_weighted_loss(tiny_config: dict, tmp_path: Path) -> None:
    tiny_config["mode"] = {
        "type": "2d",
        "slice_axis": "coronal",
        "patch_size": [32, 32],
        "samples_per_volume": 4,
    }
    tiny_config["model"] = {"name": "densenet", "se": "scse", "features": 8}
    tiny_config["loss"] = {"name": "weighted_ce_dice"}
    tiny_config["train"]["max_epochs"] = 1
    result = train(config_from_dict(tiny_config), tmp_path / "run")
    assert result.epochs == 1 and all(0.0 <= d <= 1.0 for d in result.final_dice.values())


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_epoch_count(
    tiny_config: dict, write_config, tmp_path: Path
) -> None:
    tiny_config["mode"] |= {"patch_size": [32, 32, 32], "samples_per_volume": 4}
    tiny_config["model"]["base_features"] = 8
    tiny_config["train"] |= {"max_epochs": 4, "batch_size": 2, "val_interval": 2}
    config, run = write_config(tiny_config), tmp_path / "run"
    cmd = [sys.executable, "-m", "scseg", "train", str(config), "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints/last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # SIGKILL in epoch 2: no chance to clean up
    proc.wait()
    killed_at = torch.load(run / "checkpoints/last.pt", weights_only=True)["epoch"]
    assert killed_at < 4, "the kill must land before the run finished"
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["epoch"] == 4
    assert [r["epoch"] for r in _rows(run)] == ["2", "4"]


@pytest.mark.slow
def test_compiled_training_matches_eager_training(tiny_config: dict, tmp_path: Path) -> None:
    tiny_config["train"]["max_epochs"] = 1
    eager = train(config_from_dict(tiny_config), tmp_path / "eager")
    tiny_config["train"]["compile"] = True
    compiled = train(config_from_dict(tiny_config), tmp_path / "compiled")
    weights = [
        torch.load(tmp_path / run / "checkpoints/last.pt", weights_only=True)["model"]
        for run in ("eager", "compiled")
    ]
    assert weights[0].keys() == weights[1].keys(), "checkpoints hold the plain module's names (no _orig_mod.)"
    # the same batches and the same maths, in a different order of float operations: a few steps of
    # Adam amplify last-bit differences in single weights, so compare the whole weight vector
    eager_vector = torch.cat([v.flatten().float() for v in weights[0].values()])
    compiled_vector = torch.cat([weights[1][k].flatten().float() for k in weights[0]])
    assert (compiled_vector - eager_vector).norm() < 1e-2 * eager_vector.norm()
    assert abs(compiled.best_dice - eager.best_dice) < 0.05
    assert compiled.epochs == eager.epochs


@pytest.mark.parametrize("cpu_amp", [False, True])
def test_cpu_amp_trains_a_bfloat16_forward_over_float32_weights(
    tiny_config: dict, tmp_path: Path, cpu_amp: bool
) -> None:
    tiny_config["mode"] = {
        "type": "2d",
        "slice_axis": "coronal",
        "patch_size": [32, 32],
        "samples_per_volume": 2,
    }
    tiny_config["train"].update(cpu_amp=cpu_amp, device="cpu")
    trainer = Trainer(config_from_dict(tiny_config), tmp_path / "run")
    session = trainer.set_up()
    forward_dtypes: list[torch.dtype] = []
    session.model.register_forward_hook(lambda _module, _inputs, out: forward_dtypes.append(out.dtype))
    before = [p.detach().clone() for p in session.model.parameters()]
    loss, _ = trainer.train_epoch(session, 0)
    assert forward_dtypes and set(forward_dtypes) == {torch.bfloat16 if cpu_amp else torch.float32}
    after = list(session.model.parameters())
    assert all(p.dtype == torch.float32 for p in after), "autocast leaves the weights float32"
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True)), "the step updated them"
    assert torch.isfinite(torch.tensor(loss))


def test_cpu_amp_warns_where_bf16_is_emulated(
    tiny_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_config["mode"] = {
        "type": "2d",
        "slice_axis": "coronal",
        "patch_size": [32, 32],
        "samples_per_volume": 2,
    }
    tiny_config["train"].update(cpu_amp=True, device="cpu")
    monkeypatch.setattr("scseg.engine.trainer.cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bfloat16"):
        trainer = Trainer(config_from_dict(tiny_config), tmp_path / "run")
    assert trainer.use_cpu_amp, "it still trains in bf16, so the numerics match a native-bf16 CPU"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_bfloat16_conv2d_weight_gradients_are_right_on_small_maps(size: int) -> None:
    """What ``train.cpu_amp`` being 2D-only rests on: the 3D kernels are wrong on 2x2x2 maps
    (benchmarks/cpu_bf16_gradients.py), the 2D ones must be right down to the deepest level."""
    torch.manual_seed(size)
    conv = torch.nn.Conv2d(32, 64, 3, padding=1, bias=False)
    x = torch.randn(4, 32, size, size)
    conv(x).square().mean().backward()
    reference = conv.weight.grad.clone()
    for _ in range(3):
        conv.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(x)
        out.float().square().mean().backward()
        assert (conv.weight.grad - reference).norm() < 0.02 * reference.norm()


def test_init_weights_fine_tunes_from_a_trained_model(
    tiny_config: dict, phantom_run_3d: Path, tmp_path: Path
) -> None:
    """``train.init_weights`` starts from the given model's weights (here with a learning rate too
    small to move them, so the result still equals the start), and refuses another network."""
    start = load_model(phantom_run_3d).weights
    tiny_config["train"].update(max_epochs=1, init_weights=str(phantom_run_3d))
    tiny_config["optimizer"] = {"name": "adamw", "lr": 1e-12, "weight_decay": 0.0}
    tiny_config["model"]["base_features"] = 8  # phantom_run_3d's network
    train(config_from_dict(tiny_config), tmp_path / "tuned")
    tuned = load_model(tmp_path / "tuned").weights
    for name, tensor in start.items():
        if tensor.is_floating_point() and "running" not in name:
            torch.testing.assert_close(tuned[name], tensor, rtol=0, atol=1e-6, msg=name)
    tiny_config["model"]["base_features"] = 6
    with pytest.raises(RunDirError, match="init_weights.*another network"):
        train(config_from_dict(tiny_config), tmp_path / "other")
