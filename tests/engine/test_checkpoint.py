"""Atomic checkpoint writes and RNG state capture."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from scseg.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from scseg.errors import RunDirError


def test_failed_write_leaves_the_old_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "ckpt" / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full, say")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "bad": Unpicklable()})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"], "no temp files left behind"


def test_truncated_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(RunDirError, match="cannot be read"):
        load_checkpoint(path)


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
