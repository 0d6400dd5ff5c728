"""Progress-driven learning-rate schedules."""

from __future__ import annotations

import pytest
import torch

from scseg.config.schema import SchedulerConfig
from scseg.engine.schedule import ProgressScheduler, lr_factor


@pytest.mark.parametrize("name", ["onecycle", "cosine", "poly"])
def test_schedules_start_high_or_warm_and_end_near_zero(name: str) -> None:
    config = SchedulerConfig(name=name, warmup_fraction=0.1)
    assert lr_factor(1.0, config) < 1e-3
    assert max(lr_factor(p / 100, config) for p in range(101)) == pytest.approx(1.0, abs=1e-3)
    if name == "onecycle":
        assert lr_factor(0.0, config) == pytest.approx(0.04)
        assert lr_factor(0.05, config) < lr_factor(0.1, config)


def test_time_limit_drives_progress_and_state_round_trips() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = ProgressScheduler(opt, SchedulerConfig(name="cosine"), total_steps=1000, time_limit_s=60.0)
    assert sched.step(10, elapsed_s=30.0) == pytest.approx(0.5)  # half the time, 1% of the steps
    assert sched.step(10, elapsed_s=60.0) == pytest.approx(0.0)
    clone = ProgressScheduler(opt, SchedulerConfig(name="cosine"), 1000, 60.0)
    clone.load_state_dict(sched.state_dict())
    assert clone.progress == sched.progress == 1.0
    assert lr_factor(0.5, SchedulerConfig(name="none")) == 1.0
