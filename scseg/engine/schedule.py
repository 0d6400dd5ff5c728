"""Learning-rate schedules driven by training progress in [0, 1].

Progress is the larger of (steps done / steps planned) and (time spent / time limit), so a run
bounded by ``train.time_limit_minutes`` still warms up, peaks and anneals within its budget.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from scseg.config.schema import SchedulerConfig


def lr_factor(progress: float, config: SchedulerConfig) -> float:
    """Multiplier of the base learning rate at ``progress`` (0 = start, 1 = end)."""
    p = min(max(progress, 0.0), 1.0)
    if config.name == "none":
        return 1.0
    if config.name == "poly":
        return (1.0 - p) ** config.poly_power
    if config.name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    # onecycle: linear warm-up from 4% to 100%, then cosine annealing to ~0
    warm = config.warmup_fraction
    if warm > 0 and p < warm:
        return 0.04 + 0.96 * p / warm
    return 0.5 * (1.0 + math.cos(math.pi * (p - warm) / max(1.0 - warm, 1e-8)))


class ProgressScheduler:
    """Sets every param group's LR to ``base_lr * lr_factor(progress)``; checkpointable."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        config: SchedulerConfig,
        total_steps: int,
        time_limit_s: float | None,
    ) -> None:
        self.optimizer, self.config = optimizer, config
        self.total_steps, self.time_limit_s = max(total_steps, 1), time_limit_s
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.progress = 0.0

    def step(self, global_step: int, elapsed_s: float) -> float:
        """Update the LRs for the coming step; returns the current LR of the first group."""
        progress = global_step / self.total_steps
        if self.time_limit_s:
            progress = max(progress, elapsed_s / self.time_limit_s)
        self.progress = progress
        factor = lr_factor(progress, self.config)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": list(self.base_lrs), "progress": self.progress}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lrs = list(state["base_lrs"])
        self.progress = float(state["progress"])
