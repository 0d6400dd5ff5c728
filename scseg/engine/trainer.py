"""The training loop: one process or torch.distributed (``torchrun``), resumable, time-bounded."""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import torch
from monai.utils import set_determinism
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from scseg.artefact import (
    Checkpoint,
    ModelSpec,
    Provenance,
    TrainingState,
    build_network,
    load_checkpoint,
    save_checkpoint,
    write_model_spec,
)
from scseg.artefact.layout import BEST_CHECKPOINT, LAST_CHECKPOINT, MODEL_SPEC, RUN_CONFIG
from scseg.artefact.spec import DataFingerprint, fingerprint, now
from scseg.config.load import dump_config
from scseg.config.schema import Config
from scseg.data.annotation import ANNOTATED_KEY
from scseg.data.loaders import Loaders, build_loaders, root_cause
from scseg.engine.device import cpu_has_native_bf16, resolve_device
from scseg.engine.distributed import DistInfo, barrier, broadcast_flag, cleanup, init_distributed, mean_across
from scseg.engine.losses import build_loss
from scseg.engine.rng import rng_state, set_rng_state
from scseg.engine.run_log import RunLog
from scseg.engine.schedule import ProgressScheduler
from scseg.engine.validation import validate
from scseg.errors import RunDirError, ScsegError
from scseg.io.atomic import write_text_atomic


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    best_dice: float
    final_dice: dict[str, float]
    stopped_by_time: bool


def _optimizer(config: Config, params) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, nesterov=True, weight_decay=o.weight_decay
        )
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    last = run_dir / LAST_CHECKPOINT
    if resume and not last.is_file():
        raise RunDirError(
            f"--resume: {run_dir} holds no {LAST_CHECKPOINT} to resume from"
            + ("" if run_dir.is_dir() else " (the folder does not exist)")
        )
    if not resume and last.exists():
        raise RunDirError(
            f"{run_dir} already holds a training run ({LAST_CHECKPOINT}). Pass --resume to continue it, "
            "or choose a new --out folder; existing checkpoints are never overwritten"
        )


@dataclass
class _Session:
    """What one training holds while it runs (built by :meth:`Trainer.set_up`)."""

    loaders: Loaders
    model: nn.Module  # the bare network: validation and checkpoints use it
    net: nn.Module  # what the training forward runs (DDP and/or compiled around ``model``)
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: ProgressScheduler
    scaler: torch.amp.GradScaler
    spec: ModelSpec
    log: RunLog | None
    epoch: int = 0  # epochs completed
    global_step: int = 0
    elapsed_before: float = 0.0  # seconds trained before this process (resume)
    best: float = -1.0
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started


class Trainer:
    """Trains ``config`` into ``run_dir``. Use :func:`train`; the class holds the loop's steps:
    :meth:`set_up` (and :meth:`resume`), :meth:`train_epoch`, :meth:`validate`, :meth:`save`."""

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        resume: bool = False,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.config, self.run_dir, self.resume_run = config, Path(run_dir), resume
        self.on_epoch = on_epoch  # called on the main rank after each epoch: (epochs done, seconds)
        self.device = resolve_device(config.train.device, "train.device")
        self.dist: DistInfo = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        if self.device.type == "cpu" and config.train.num_threads:
            torch.set_num_threads(config.train.num_threads)
        self.main = self.dist.is_main
        self.use_amp = config.train.amp and self.device.type == "cuda"
        self.use_cpu_amp = config.train.cpu_amp and self.device.type == "cpu"
        if self.use_cpu_amp and not cpu_has_native_bf16():
            warnings.warn(
                "train.cpu_amp: this CPU has no native bfloat16 (AVX512-BF16 / AMX), so bf16 is emulated "
                "and training is slower than float32; it still trains in bf16 (the same numerics).",
                stacklevel=2,
            )

    def run(self) -> TrainResult:
        cfg = self.config
        session = self.set_up()
        dice: dict[str, float] = {}
        stopped_by_time, start_epoch = False, session.epoch
        for epoch in range(start_epoch, cfg.train.max_epochs):
            train_loss, stopped_by_time = self.train_epoch(session, epoch)
            session.epoch = epoch + 1
            last_epoch = stopped_by_time or session.epoch == cfg.train.max_epochs
            if session.log:
                session.log.log_train(session.epoch, train_loss, session.optimizer.param_groups[0]["lr"])
            if session.epoch % cfg.train.val_interval == 0 or last_epoch:
                dice = self.validate(session, train_loss)
            self.save(session, dice)
            if self.on_epoch is not None and self.main:
                self.on_epoch(session.epoch, session.elapsed())
            if stopped_by_time:
                break
        if session.log:
            session.log.close()
        return TrainResult(self.run_dir, session.epoch, session.best, dice, stopped_by_time)

    def set_up(self) -> _Session:
        """Data, network, optimisation; the run directory's config.yaml and model.yaml; resume state."""
        cfg = self.config
        _check_run_dir(self.run_dir, self.resume_run)
        set_determinism(seed=cfg.train.seed + self.dist.rank)
        loaders = build_loaders(cfg, self.dist.rank, self.dist.world_size, show_progress=self.main)
        spec = ModelSpec.from_config(cfg, Provenance(trained_at=now(), data=_fingerprint(cfg, loaders)))
        model = build_network(spec.network)
        if cfg.train.init_weights is not None and not self.resume_run:
            _load_initial_weights(model, cfg.train.init_weights)
        model = model.to(self.device)
        net: nn.Module = DistributedDataParallel(model) if self.dist.enabled else model
        if cfg.train.compile:
            net = torch.compile(net)  # the training forward; validation and checkpoints use `model`
        optimizer = _optimizer(cfg, model.parameters())
        time_limit_s = cfg.train.time_limit_minutes * 60 if cfg.train.time_limit_minutes else None
        session = _Session(
            loaders=loaders,
            model=model,
            net=net,
            loss_fn=build_loss(cfg, [str(c.label) for c in loaders.train_cases]).to(self.device),
            optimizer=optimizer,
            scheduler=ProgressScheduler(
                optimizer, cfg.scheduler, cfg.train.max_epochs * len(loaders.train), time_limit_s
            ),
            scaler=torch.amp.GradScaler("cuda", enabled=self.use_amp),
            spec=spec,
            log=RunLog(self.run_dir, cfg.output_names, tensorboard=True) if self.main else None,
        )
        if self.resume_run:
            self.resume(session)
        if self.main:  # the resolved config (a record, incl. --set overrides on resume) and the artefact
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / RUN_CONFIG, dump_config(cfg))
            if not (self.resume_run and (self.run_dir / MODEL_SPEC).is_file()):
                write_model_spec(self.run_dir / MODEL_SPEC, spec)  # on resume: keeps the best weights' own
        barrier(self.dist)
        session.started = time.monotonic()
        return session

    def resume(self, session: _Session) -> None:
        """Continue from ``last.pt``: weights, optimiser, schedule, step counters and RNG states."""
        checkpoint = load_checkpoint(self.run_dir / LAST_CHECKPOINT)
        state = checkpoint.training
        if state is None:
            raise RunDirError(f"--resume: {self.run_dir / LAST_CHECKPOINT} holds no training state")
        session.model.load_state_dict(checkpoint.model)
        session.optimizer.load_state_dict(state.optimizer)
        session.scheduler.load_state_dict(state.scheduler)
        session.scaler.load_state_dict(state.scaler)
        session.epoch, session.global_step = int(checkpoint.epoch or 0), state.global_step
        session.elapsed_before, session.best = state.elapsed_s, state.best_dice
        set_rng_state(state.rng)
        if session.log:
            session.log.resume(session.epoch)

    def train_epoch(self, session: _Session, epoch: int) -> tuple[float, bool]:
        """One pass over the training data; returns (mean loss, whether the time limit stopped it)."""
        cfg, s = self.config, session
        # reseed the random transforms per epoch so a resumed run samples what the original would
        s.loaders.train_dataset.transform.set_random_state(
            seed=cfg.train.seed + 1000 * epoch + self.dist.rank
        )
        if s.loaders.sampler is not None:
            s.loaders.sampler.set_epoch(epoch)
        s.net.train()
        total, count, stopped = 0.0, 0, False
        time_limit_s = s.scheduler.time_limit_s
        bar = tqdm(
            s.loaders.train,
            desc=f"epoch {epoch + 1}/{cfg.train.max_epochs}",
            disable=not self.main,
            leave=False,
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # keep CI logs readable
        )
        for batch in bar:
            lr = s.scheduler.step(s.global_step, s.elapsed())
            loss = self._step(s, batch, epoch)
            s.global_step += 1
            total, count = total + loss, count + 1
            bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{lr:.2e}", refresh=False)
            if time_limit_s and broadcast_flag(s.elapsed() >= time_limit_s, self.dist):
                stopped = True
                break
        bar.close()
        return mean_across(total / max(count, 1), self.dist), stopped

    def _step(self, s: _Session, batch: dict, epoch: int) -> float:
        image = batch["image"].to(self.device, non_blocking=True)
        label = batch["label"].to(self.device, non_blocking=True)
        s.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = s.net(image)
        # partial labels: which classes each sample annotated (scseg.data.annotation)
        annotated = [batch[ANNOTATED_KEY].to(self.device)] if self.config.data.annotated else []
        loss = s.loss_fn(logits.float(), label, *annotated)  # softmax and Dice sums in float32
        if not torch.isfinite(loss):
            raise ScsegError(
                f"training diverged at epoch {epoch + 1} (loss {loss.item()}); lower optimizer.lr"
            )
        s.scaler.scale(loss).backward()
        s.scaler.unscale_(s.optimizer)
        nn.utils.clip_grad_norm_(s.model.parameters(), 12.0)
        s.scaler.step(s.optimizer)
        s.scaler.update()
        return float(loss.detach())

    def _autocast(self) -> contextlib.AbstractContextManager:
        """The training forward's precision: float16 on CUDA (``amp``, with the grad scaler),
        bfloat16 on CPU (``cpu_amp``: bf16 keeps float32's range, so it needs no scaler)."""
        if self.use_amp:
            return torch.autocast("cuda", dtype=torch.float16)
        if self.use_cpu_amp:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def validate(self, s: _Session, train_loss: float) -> dict[str, float]:
        """Dice per structure on the validation volumes (every rank its share); logs it and keeps
        ``best.pt`` when the mean improved."""
        dice = validate(s.model, s.loaders.val, self.config, self.device)
        if s.log:
            row = s.log.log_validation(s.epoch, train_loss, dice, s.elapsed() / 60)
            mean = row["mean_dice"]
            tqdm.write(
                f"epoch {s.epoch}: loss {train_loss:.4f}, mean Dice {mean:.4f} "
                + " ".join(f"{n}={d:.3f}" for n, d in dice.items())
            )
            if not math.isnan(mean) and mean > s.best:
                s.best = mean
                checkpoint = self._checkpoint(s, dice)
                save_checkpoint(self.run_dir / BEST_CHECKPOINT, checkpoint)
                # model.yaml describes the best weights, with their epoch and Dice
                write_model_spec(self.run_dir / MODEL_SPEC, ModelSpec.model_validate(checkpoint.spec))
        return dice

    def save(self, s: _Session, dice: dict[str, float]) -> None:
        """``last.pt``: the weights with the training state, so ``--resume`` continues from here."""
        if self.main:
            training = TrainingState(
                optimizer=s.optimizer.state_dict(),
                scheduler=s.scheduler.state_dict(),
                scaler=s.scaler.state_dict(),
                global_step=s.global_step,
                elapsed_s=s.elapsed(),
                best_dice=s.best,
                rng=rng_state(),
            )
            save_checkpoint(self.run_dir / LAST_CHECKPOINT, self._checkpoint(s, dice, training))
        barrier(self.dist)

    def _checkpoint(
        self, s: _Session, dice: dict[str, float], training: TrainingState | None = None
    ) -> Checkpoint:
        spec = s.spec.model_copy(deep=True)
        spec.provenance.epoch, spec.provenance.validation_dice = s.epoch, dict(dice)
        return Checkpoint(
            model=s.model.state_dict(),
            epoch=s.epoch,
            dice=dict(dice),
            spec=spec.to_dict(),
            training=training,
        )


def _load_initial_weights(model: nn.Module, source: Path) -> None:
    """``train.init_weights``: start from a trained model of the same network (fine-tuning).

    Raises:
        RunDirError: ``source`` is not a model, or its weights do not fit this config's network.
    """
    from scseg.artefact import load_model

    weights = load_model(source).weights
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise RunDirError(
            f"train.init_weights: {source} holds weights of another network than this config's model "
            f"section describes ({str(err).splitlines()[0]})"
        ) from None


def _fingerprint(config: Config, loaders: Loaders) -> DataFingerprint:
    """Counts, median spacing (NIfTI headers) and a hash of the case names of the training data."""
    spacings = []
    for case in loaders.train_cases:
        if case.image.is_file():
            zooms = nib.load(case.image).header.get_zooms()[:3]
            spacings.append([float(z) for z in zooms])
    return fingerprint(
        Path(config.data.root).name,
        [c.name for c in loaders.train_cases],
        [c.name for c in loaders.val_cases],
        spacings,
    )


def train(
    config: Config,
    run_dir: str | Path,
    resume: bool = False,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``config`` into ``run_dir`` (or continue it with ``resume=True``); ``on_epoch(epochs
    done, seconds trained)`` is called after every epoch (progress reports).

    Raises:
        ScsegError: bad data, an existing run without ``resume``, a missing run with it.
    """
    trainer = Trainer(config, Path(run_dir), resume, on_epoch)
    try:
        return trainer.run()
    except RuntimeError as err:  # transform failures during training arrive wrapped by MONAI
        cause = root_cause(err)
        if isinstance(cause, ScsegError):
            raise cause from None
        raise
    finally:
        cleanup(trainer.dist)
