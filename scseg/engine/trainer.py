"""The training loop: one process or torch.distributed (``torchrun``), resumable, time-bounded."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.utils import set_determinism
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from scseg import __version__
from scseg.config.load import dump_config
from scseg.config.schema import Config
from scseg.data.loaders import build_loaders, root_cause
from scseg.engine.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from scseg.engine.distributed import DistInfo, barrier, broadcast_flag, cleanup, init_distributed, mean_across
from scseg.engine.losses import build_loss
from scseg.engine.run_log import RunLog
from scseg.engine.schedule import ProgressScheduler
from scseg.engine.validation import validate
from scseg.errors import RunDirError, ScsegError
from scseg.io.atomic import atomic_write_bytes
from scseg.nn import create_model


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best_dice: float
    final_dice: dict[str, float]
    stopped_by_time: bool


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScsegError(f"train.device={name!r} but CUDA is not available here; use 'auto' or 'cpu'")
    return device


def build_model(config: Config) -> nn.Module:
    """The network a config describes (also used by prediction and export)."""
    m = config.model
    return create_model(m.name, config.spatial_dims, m.in_channels, config.num_classes, **m.create_kwargs())


def _optimizer(config: Config, params) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, nesterov=True, weight_decay=o.weight_decay
        )
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    last = run_dir / "checkpoints" / "last.pt"
    if resume and not last.is_file():
        raise RunDirError(
            f"--resume: {run_dir} holds no checkpoints/last.pt to resume from"
            + ("" if run_dir.is_dir() else " (the folder does not exist)")
        )
    if not resume and last.exists():
        raise RunDirError(
            f"{run_dir} already holds a training run (checkpoints/last.pt). Pass --resume to continue it, "
            "or choose a new --out folder; existing checkpoints are never overwritten"
        )


class Trainer:
    """Trains ``config`` into ``run_dir``. Use :func:`train`; the class holds the loop's state."""

    def __init__(self, config: Config, run_dir: Path, resume: bool = False) -> None:
        self.config, self.run_dir, self.resume = config, Path(run_dir), resume
        self.device = resolve_device(config.train.device)
        self.dist: DistInfo = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        if self.device.type == "cpu" and config.train.num_threads:
            torch.set_num_threads(config.train.num_threads)
        self.main = self.dist.is_main

    def run(self) -> TrainResult:
        cfg = self.config
        _check_run_dir(self.run_dir, self.resume)
        set_determinism(seed=cfg.train.seed + self.dist.rank)
        loaders = build_loaders(cfg, self.dist.rank, self.dist.world_size, show_progress=self.main)
        model = build_model(cfg).to(self.device)
        net: nn.Module = DistributedDataParallel(model) if self.dist.enabled else model
        if cfg.train.compile:
            net = torch.compile(net)  # the training forward; validation and checkpoints use `model`
        loss_fn = build_loss(cfg, [str(c.label) for c in loaders.train_cases]).to(self.device)
        optimizer = _optimizer(cfg, model.parameters())
        steps_per_epoch = len(loaders.train)
        time_limit_s = cfg.train.time_limit_minutes * 60 if cfg.train.time_limit_minutes else None
        scheduler = ProgressScheduler(
            optimizer, cfg.scheduler, cfg.train.max_epochs * steps_per_epoch, time_limit_s
        )
        use_amp = cfg.train.amp and self.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        names = cfg.data.structure_names
        log = RunLog(self.run_dir, names, tensorboard=self.main) if self.main else None

        start_epoch, global_step, elapsed_before, best = 0, 0, 0.0, -1.0
        if self.resume:
            state = load_checkpoint(self.run_dir / "checkpoints" / "last.pt")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            start_epoch, global_step = state["epoch"], state["global_step"]
            elapsed_before, best = state["elapsed_s"], state["best_dice"]
            set_rng_state(state["rng"])
            if log:
                log.resume(start_epoch)
        if self.main:  # the resolved config, including --set overrides given on resume
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.run_dir / "config.yaml", lambda f: f.write(dump_config(cfg).encode()))
        barrier(self.dist)

        t0 = time.monotonic()
        elapsed = lambda: elapsed_before + time.monotonic() - t0  # noqa: E731
        dice: dict[str, float] = {}
        stopped_by_time, epoch = False, start_epoch
        for epoch in range(start_epoch, cfg.train.max_epochs):
            # reseed the random transforms per epoch so a resumed run samples what the original would
            loaders.train_dataset.transform.set_random_state(
                seed=cfg.train.seed + 1000 * epoch + self.dist.rank
            )
            if loaders.sampler is not None:
                loaders.sampler.set_epoch(epoch)
            net.train()
            total, count = 0.0, 0
            bar = tqdm(
                loaders.train,
                desc=f"epoch {epoch + 1}/{cfg.train.max_epochs}",
                disable=not self.main,
                leave=False,
                dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30.0,  # keep CI logs readable
            )
            for batch in bar:
                lr = scheduler.step(global_step, elapsed())
                image = batch["image"].to(self.device, non_blocking=True)
                label = batch["label"].to(self.device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                autocast = (
                    torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
                )
                with autocast:
                    loss = loss_fn(net(image), label)
                if not torch.isfinite(loss):
                    raise ScsegError(
                        f"training diverged at epoch {epoch + 1} (loss {loss.item()}); lower optimizer.lr"
                    )
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), 12.0)
                scaler.step(optimizer)
                scaler.update()
                global_step += 1
                total, count = total + float(loss.detach()), count + 1
                bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{lr:.2e}", refresh=False)
                if time_limit_s and broadcast_flag(elapsed() >= time_limit_s, self.dist):
                    stopped_by_time = True
                    break
            bar.close()
            train_loss = mean_across(total / max(count, 1), self.dist)
            last_epoch = stopped_by_time or epoch + 1 == cfg.train.max_epochs
            if log:
                log.log_train(epoch + 1, train_loss, lr)
            validating = (epoch + 1) % cfg.train.val_interval == 0 or last_epoch
            if validating:
                dice = validate(model, loaders.val, cfg, self.device)  # every rank: its share of the cases
            if log and validating:
                row = log.log_validation(epoch + 1, train_loss, dice, elapsed() / 60)
                mean = row["mean_dice"]
                tqdm.write(
                    f"epoch {epoch + 1}: loss {train_loss:.4f}, mean Dice {mean:.4f} "
                    + " ".join(f"{n}={d:.3f}" for n, d in dice.items())
                )
                if not math.isnan(mean) and mean > best:
                    best = mean
                    save_checkpoint(
                        self.run_dir / "checkpoints" / "best.pt", self._weights(model, epoch + 1, dice)
                    )
            if self.main:
                save_checkpoint(
                    self.run_dir / "checkpoints" / "last.pt",
                    {
                        **self._weights(model, epoch + 1, dice),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "global_step": global_step,
                        "elapsed_s": elapsed(),
                        "best_dice": best,
                        "rng": rng_state(),
                    },
                )
            barrier(self.dist)
            if stopped_by_time:
                break
        if log:
            log.close()
        completed = epoch + 1 if cfg.train.max_epochs > start_epoch else start_epoch
        return TrainResult(self.run_dir, completed, best, dice, stopped_by_time)

    def _weights(self, model: nn.Module, epoch: int, dice: dict[str, float]) -> dict:
        return {
            "model": model.state_dict(),
            "epoch": epoch,
            "dice": dict(dice),
            "config": self.config.model_dump(mode="json"),
            "label_names": self.config.data.structure_names,
            "scseg_version": __version__,
        }


def train(config: Config, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train ``config`` into ``run_dir`` (or continue it with ``resume=True``).

    Raises:
        ScsegError: bad data, an existing run without ``resume``, a missing run with it.
    """
    trainer = Trainer(config, Path(run_dir), resume)
    try:
        return trainer.run()
    except RuntimeError as err:  # transform failures during training arrive wrapped by MONAI
        cause = root_cause(err)
        if isinstance(cause, ScsegError):
            raise cause from None
        raise
    finally:
        cleanup(trainer.dist)
