"""The one module that knows where a model's files live: run directories, bundles, lone checkpoints.

A run directory (``scseg train --out RUN``)::

    RUN/config.yaml            the training config, resolved (a record; inference never reads it)
    RUN/model.yaml             the model artefact's description (:class:`ModelSpec`)
    RUN/checkpoints/best.pt    weights with the best validation Dice (+ the spec)
    RUN/checkpoints/last.pt    the latest weights (+ the spec and the training state for --resume)

A bundle (``scseg export-bundle RUN OUT``) follows the MONAI Bundle layout and adds
``configs/scseg_model.yaml``. A lone ``.pt`` checkpoint carries its spec inside.

Example:
    >>> loaded = load_model("runs/hippo3d")          # doctest: +SKIP
    >>> loaded.spec.labels.names                      # doctest: +SKIP
    ['anterior', 'posterior']
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from pydantic import ValidationError

from scseg.artefact.checkpoint import Checkpoint, load_checkpoint
from scseg.artefact.spec import ModelSpec, Provenance
from scseg.config.load import config_from_dict
from scseg.config.yaml_io import read_yaml
from scseg.errors import ConfigError, RunDirError
from scseg.io.atomic import write_text_atomic

RUN_CONFIG = Path("config.yaml")
MODEL_SPEC = Path("model.yaml")
CHECKPOINTS = Path("checkpoints")
BEST_CHECKPOINT = CHECKPOINTS / "best.pt"
LAST_CHECKPOINT = CHECKPOINTS / "last.pt"
VIEWS = Path("views")  # a multi-view run: one run directory per view

BUNDLE_METADATA = Path("configs") / "metadata.json"
BUNDLE_INFERENCE = Path("configs") / "inference.json"
BUNDLE_MODEL_SPEC = Path("configs") / "scseg_model.yaml"
BUNDLE_TRAIN_CONFIG = Path("configs") / "scseg_train_config.yaml"  # a record, as RUN/config.yaml
BUNDLE_WEIGHTS = Path("models") / "model.pt"
BUNDLE_TORCHSCRIPT = Path("models") / "model.ts"
BUNDLE_README = Path("docs") / "README.md"
# bundles exported before the model spec kept the training config here
LEGACY_BUNDLE_CONFIG = Path("configs") / "scseg_config.yaml"


def is_bundle(path: Path) -> bool:
    """A MONAI bundle folder (``configs/metadata.json``)."""
    return (Path(path) / BUNDLE_METADATA).is_file()


def is_run_dir(path: Path) -> bool:
    """A folder written by ``scseg train`` (a model description or a checkpoint in place)."""
    path = Path(path)
    return (path / MODEL_SPEC).is_file() or (path / RUN_CONFIG).is_file() or (path / CHECKPOINTS).is_dir()


def find_checkpoint(run_dir: Path) -> Path:
    """``checkpoints/best.pt`` (best validation Dice), else ``checkpoints/last.pt``."""
    for rel in (BEST_CHECKPOINT, LAST_CHECKPOINT):
        if (run_dir / rel).is_file():
            return run_dir / rel
    raise RunDirError(
        f"{run_dir} is not a trained run directory: expected {BEST_CHECKPOINT} or {LAST_CHECKPOINT} "
        "(written by `scseg train --out RUN_DIR`)"
    )


def write_model_spec(path: Path, spec: ModelSpec) -> None:
    """Write ``spec`` as YAML to ``path`` atomically."""
    header = "# scseg model artefact: everything inference needs (see docs/model_artefact.md)\n"
    write_text_atomic(path, header + yaml.safe_dump(spec.to_dict(), sort_keys=False))


def read_model_spec(path: Path) -> ModelSpec:
    """Read and validate a ``model.yaml``.

    Raises:
        RunDirError: unreadable, oversized or invalid file, naming it and the bad key.
    """
    try:
        raw = read_yaml(path)
    except ConfigError as err:
        raise RunDirError(str(err)) from None
    return _validate_spec(raw, str(path))


def _validate_spec(raw: object, source: str) -> ModelSpec:
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in err.errors()
        )
        raise RunDirError(f"{source} is not a valid scseg model description: {problems}") from None


def spec_from_training_config(raw: dict, source: str, checkpoint: Checkpoint | None = None) -> ModelSpec:
    """Rebuild the spec of a model saved before ``model.yaml`` existed, from its training config.

    The data folder it names need not exist. Options the config left unset (``null``, as older
    versions wrote them) stay unset, so the architecture's own defaults apply, as they did then.
    """
    try:
        config = config_from_dict(copy.deepcopy(raw), source, check_data=False)
    except ConfigError as err:
        raise RunDirError(
            f"{source}: this model was saved by an older scseg and its training config cannot be read "
            f"any more, so the model cannot be rebuilt ({err}). Re-export it with the scseg version "
            "that trained it, or retrain"
        ) from None
    provenance = Provenance()
    if checkpoint is not None:
        provenance = Provenance(epoch=checkpoint.epoch, validation_dice=checkpoint.dice)
    spec = ModelSpec.from_config(config, provenance)
    spec.versions = {}  # unknown: the versions that trained it were not recorded
    if checkpoint is not None and checkpoint.legacy_label_names:
        spec.labels.names = list(checkpoint.legacy_label_names)
    return spec


@dataclass
class LoadedModel:
    """A model artefact read from disk: its description and weights, and where they came from."""

    spec: ModelSpec
    weights: dict[str, torch.Tensor]
    source: Path  # the run directory, bundle folder or .pt file given
    weights_file: Path

    @property
    def epoch(self) -> int | None:
        return self.spec.provenance.epoch

    @property
    def validation_dice(self) -> dict[str, float]:
        return dict(self.spec.provenance.validation_dice)


def _spec_of_checkpoint(checkpoint: Checkpoint, path: Path) -> ModelSpec:
    if checkpoint.spec is not None:
        return _validate_spec(checkpoint.spec, f"{path} (its stored model description)")
    if checkpoint.legacy_config is not None:
        return spec_from_training_config(checkpoint.legacy_config, f"{path} (its stored config)", checkpoint)
    raise RunDirError(
        f"{path} holds weights but no model description (a bundle's bare state dict or a foreign "
        "checkpoint): load the run directory or bundle it came from instead"
    )


def _load_bundle(path: Path) -> LoadedModel:
    weights_file = path / BUNDLE_WEIGHTS
    if not weights_file.is_file():
        raise RunDirError(f"bundle {path} has no {BUNDLE_WEIGHTS}")
    checkpoint = load_checkpoint(weights_file)
    if (path / BUNDLE_MODEL_SPEC).is_file():
        spec = read_model_spec(path / BUNDLE_MODEL_SPEC)
    elif (path / LEGACY_BUNDLE_CONFIG).is_file():
        spec = spec_from_training_config(
            read_yaml(path / LEGACY_BUNDLE_CONFIG), str(path / LEGACY_BUNDLE_CONFIG)
        )
    else:
        raise RunDirError(
            f"{path} is a MONAI bundle but not one exported by scseg: {BUNDLE_MODEL_SPEC} is missing "
            "(export run directories with `scseg export-bundle RUN_DIR OUT_DIR`)"
        )
    return LoadedModel(spec, checkpoint.model, path, weights_file)


def _check_views_assembled(path: Path) -> None:
    """A multi-view run is a model once every view is trained (``RUN/model.yaml`` written then)."""
    views = path / VIEWS
    if (path / MODEL_SPEC).is_file() or not views.is_dir():
        return
    axes = sorted(v.name for v in views.iterdir() if v.is_dir())
    if (path / RUN_CONFIG).is_file():  # the config names every view, also those not started
        declared = (read_yaml(path / RUN_CONFIG).get("mode") or {}).get("views") or []
        axes = [str(v.get("axis")) for v in declared if isinstance(v, dict)] or axes
    state = {a: "trained" if (views / a / BEST_CHECKPOINT).is_file() else "not trained yet" for a in axes}
    listed = ", ".join(f"{axis} {what}" for axis, what in state.items()) or "no view trained yet"
    raise RunDirError(
        f"{path} is a multi-view run whose views are not all trained ({listed}); it becomes a model "
        "when every view of its config is: `scseg train CONFIG --out RUN --resume` trains the rest"
    )


def _load_run_dir(path: Path) -> LoadedModel:
    _check_views_assembled(path)
    weights_file = find_checkpoint(path)
    checkpoint = load_checkpoint(weights_file)
    if (path / MODEL_SPEC).is_file():
        spec = read_model_spec(path / MODEL_SPEC)
        # the weights' own epoch and Dice (best.pt may be older than the last model.yaml write)
        spec.provenance.epoch, spec.provenance.validation_dice = checkpoint.epoch, dict(checkpoint.dice)
    elif checkpoint.spec is not None:
        spec = _spec_of_checkpoint(checkpoint, weights_file)
    elif (path / RUN_CONFIG).is_file():  # a run directory from before model.yaml
        spec = spec_from_training_config(read_yaml(path / RUN_CONFIG), str(path / RUN_CONFIG), checkpoint)
    else:
        spec = _spec_of_checkpoint(checkpoint, weights_file)
    return LoadedModel(spec, checkpoint.model, path, weights_file)


def load_model(path: str | Path) -> LoadedModel:
    """Read a model artefact: a run directory, an scseg bundle, or a lone ``.pt`` checkpoint.

    Nothing here reads the training data or needs the folder it was trained from.

    Raises:
        RunDirError: not a model, or one whose description or weights cannot be read (the message
            names the file and what is wrong).
    """
    path = Path(path)
    if path.is_file():
        checkpoint = load_checkpoint(path)
        return LoadedModel(_spec_of_checkpoint(checkpoint, path), checkpoint.model, path, path)
    if is_bundle(path):
        return _load_bundle(path)
    if is_run_dir(path):
        return _load_run_dir(path)
    raise RunDirError(
        f"{path} is not a model: expected a run directory ({MODEL_SPEC} + {CHECKPOINTS}/), a bundle "
        f"written by `scseg export-bundle` ({BUNDLE_METADATA}), or a .pt checkpoint"
        + ("" if path.exists() else " (it does not exist)")
    )
