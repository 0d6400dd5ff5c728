"""Checkpoints: one typed record, written atomically (temp file + rename), read with ``weights_only=True``.

Every checkpoint carries the model's :class:`~scseg.artefact.spec.ModelSpec` as plain values, so a
lone ``.pt`` file is a complete model. ``last.pt`` adds the :class:`TrainingState` that ``--resume``
needs. Checkpoints written before the spec existed (``config`` + ``label_names`` keys) still load;
:func:`scseg.artefact.layout.load_model` rebuilds their spec from the stored training config.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from scseg.errors import RunDirError
from scseg.io.atomic import atomic_write_bytes
from scseg.io.names import display_path

_TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "global_step", "elapsed_s", "best_dice", "rng")


@dataclass
class TrainingState:
    """What continuing a training needs beyond the weights."""

    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    global_step: int
    elapsed_s: float
    best_dice: float
    rng: dict[str, Any]


@dataclass
class Checkpoint:
    """Weights, the epoch and validation Dice they reached, the model spec, and (``last.pt``) the
    training state.

    ``legacy_config`` is set only for checkpoints from before the model spec: the training config
    they stored, from which the spec can be rebuilt.
    """

    model: dict[str, torch.Tensor]
    epoch: int | None = None
    dice: dict[str, float] = field(default_factory=dict)
    spec: dict[str, Any] | None = None
    training: TrainingState | None = None
    legacy_config: dict[str, Any] | None = None
    legacy_label_names: list[str] | None = None

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"model": self.model, "epoch": self.epoch, "dice": dict(self.dice)}
        if self.spec is not None:
            state["spec"] = self.spec
        if self.training is not None:
            state.update(vars(self.training))
        return state

    @classmethod
    def from_state(cls, state: Any, source: Path) -> Checkpoint:
        if (
            isinstance(state, dict)
            and "model" not in state
            and state
            and all(isinstance(v, torch.Tensor) for v in state.values())
        ):  # a bare state dict (bundles' models/model.pt)
            return cls(model=state)
        if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
            raise RunDirError(f"{source} is not an scseg checkpoint (no 'model' weights in it)")
        training = None
        if all(k in state for k in _TRAINING_KEYS):
            training = TrainingState(**{k: state[k] for k in _TRAINING_KEYS})
        return cls(
            model=state["model"],
            epoch=state.get("epoch"),
            dice=dict(state.get("dice") or {}),
            spec=state.get("spec"),
            training=training,
            legacy_config=state.get("config"),
            legacy_label_names=state.get("label_names"),
        )


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """``torch.save`` the checkpoint to ``path`` atomically (an existing file is replaced only by a
    complete new one).

    Raises:
        RunDirError: it could not be written (a full disk, a read-only folder): the reason, and that
            the previous checkpoint is unchanged.
    """
    # serialised in memory first: a full disk then fails with its own OSError ("No space left on
    # device") instead of torch's "[enforce fail at inline_container.cc] unexpected pos"
    buffer = io.BytesIO()
    torch.save(checkpoint.to_state(), buffer)
    try:
        atomic_write_bytes(path, lambda f: f.write(buffer.getbuffer()))
    except OSError as err:
        raise RunDirError(
            f"{display_path(path)} could not be written ({err.strerror or err}); the previous "
            f"{path.name}, if any, is unchanged. Make room, then continue the run with "
            "`scseg train CONFIG --out RUN --resume`"
        ) from None


def load_checkpoint(path: Path) -> Checkpoint:
    """Load a checkpoint safely (``weights_only=True``: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which, do not crash with a pickle trace
        raise RunDirError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from None
    return Checkpoint.from_state(state, path)
