"""torchrun with two CPU processes (gloo): distributed sampler, rank-0-only writing."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_and_only_rank_0_writes(
    tiny_config: dict, write_config, tmp_path: Path
) -> None:
    tiny_config["train"] |= {"max_epochs": 2, "num_threads": 1}
    config, run = write_config(tiny_config), tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "scseg",
        "train",
        str(config),
        "--out",
        str(run),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("validation Dice after 2 epochs") == 1, "only rank 0 reports"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"], "one row per validation, not one per rank"
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert state["epoch"] == 2
    # 8 training phantoms, batch 4 per rank, 2 ranks -> 1 step per epoch per rank (the sampler splits the data)
    assert state["global_step"] == 2
    assert not list(run.glob("**/*.tmp")), "no stray temp files"
