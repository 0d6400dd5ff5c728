"""Atomic checkpoint writes, the typed checkpoint record, RNG state capture."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from scseg.artefact import Checkpoint, TrainingState, load_checkpoint, save_checkpoint
from scseg.engine.rng import rng_state, set_rng_state
from scseg.errors import RunDirError


def test_failed_write_leaves_the_old_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "last.pt"
    save_checkpoint(path, Checkpoint(model={"w": torch.ones(3)}, epoch=1))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full, say")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, Checkpoint(model={"w": torch.ones(3)}, epoch=2, spec={"bad": Unpicklable()}))
    assert load_checkpoint(path).epoch == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"], "no temp files left behind"


def test_truncated_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, Checkpoint(model={"w": torch.ones(100)}))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(RunDirError, match="cannot be read"):
        load_checkpoint(path)


def test_a_file_without_weights_is_not_a_checkpoint(tmp_path: Path) -> None:
    torch.save({"epoch": 3}, tmp_path / "x.pt")
    with pytest.raises(RunDirError, match="not an scseg checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


def test_training_state_and_spec_round_trip(tmp_path: Path) -> None:
    state = TrainingState(
        {"o": 1}, {"s": 2}, {}, global_step=7, elapsed_s=1.5, best_dice=0.5, rng=rng_state()
    )
    spec = {"format": "scseg-model/1", "labels": {"names": ["a"], "values": [4]}}
    save_checkpoint(tmp_path / "c.pt", Checkpoint({"w": torch.ones(2)}, 3, {"a": 0.5}, spec, state))
    back = load_checkpoint(tmp_path / "c.pt")
    assert back.epoch == 3 and back.dice == {"a": 0.5} and back.spec == spec
    assert back.training is not None and back.training.global_step == 7 and back.training.best_dice == 0.5
    best = Checkpoint({"w": torch.ones(2)}, 3)
    save_checkpoint(tmp_path / "best.pt", best)
    assert load_checkpoint(tmp_path / "best.pt").training is None, "weights-only checkpoints carry no state"


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = TrainingState({}, {}, {}, 0, 0.0, 0.0, rng=rng_state())
    save_checkpoint(tmp_path / "rng.pt", Checkpoint({"w": torch.ones(1)}, training=state))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    loaded = load_checkpoint(tmp_path / "rng.pt").training
    assert loaded is not None
    set_rng_state(loaded.rng)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
