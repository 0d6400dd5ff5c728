"""``scseg crossval``: k models on k folds of the cases, a fold table, and their ensemble as one model.

Layout of ``OUT``::

    OUT/crossval.json            the folds (case names), seed and what each finished fold reached
    OUT/fold_<i>/                an ordinary run directory (a multi-view run for multi-view configs)
    OUT/folds.csv, OUT/folds.md  validation Dice per structure per fold, and their mean
    OUT/model.yaml + checkpoints/best.pt
                                 the ensemble (:class:`scseg.nn.ensemble.EnsembleNetwork`) once
                                 every fold is trained: OUT predicts, evaluates, exports and serves

Re-running the same command continues: finished folds are kept, an interrupted fold resumes from its
``last.pt``, and a changed fold plan (other cases, seed or fold count) is refused instead of mixed.
By default the folds split the config's *training* cases, so its validation cases stay unseen by
every fold and measure the ensemble honestly (``scseg evaluate OUT --data CONFIG``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scseg.artefact.checkpoint import Checkpoint, save_checkpoint
from scseg.artefact.layout import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    MODEL_SPEC,
    RUN_CONFIG,
    load_model,
    write_model_spec,
)
from scseg.artefact.spec import NetworkSpec, Provenance, now
from scseg.config.data_section import SplitConfig
from scseg.config.load import dump_config
from scseg.config.schema import Config
from scseg.data.cases import discover_cases, split_cases
from scseg.data.loaders import prepare_dataset
from scseg.errors import ConfigError, RunDirError
from scseg.io.atomic import write_text_atomic
from scseg.io.csv_report import write_csv

PLAN = Path("crossval.json")


def fold_split(names: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """``folds`` disjoint validation sets of case names covering every case (seeded shuffle, sizes
    differing by at most one).

    Example:
        >>> parts = fold_split([f"c{i}" for i in range(7)], 3, seed=0)
        >>> sorted(len(p) for p in parts), sorted(sum(parts, [])) == sorted(f"c{i}" for i in range(7))
        ([2, 2, 3], True)
    """
    if folds < 2:
        raise ConfigError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if len(names) < folds:
        raise ConfigError(f"--folds {folds}: only {len(names)} cases to split")
    order = sorted(names)
    random.Random(seed).shuffle(order)
    return [sorted(order[i::folds]) for i in range(folds)]


def fold_config(config: Config, train: list[str], val: list[str]) -> Config:
    """``config`` with an explicit split (everything else unchanged)."""
    data = config.data.model_copy(update={"split": SplitConfig(train=train, val=val)})
    return config.model_copy(update={"data": data})


@dataclass
class CrossvalResult:
    out_dir: Path
    fold_dice: list[dict[str, float]]  # per fold: structure -> validation Dice


def _plan(config: Config, folds: int, all_cases: bool) -> dict:
    prepare_dataset(config)
    cases = discover_cases(config.data)
    held_out: list[str] = []
    if not all_cases:
        train_cases, val_cases = split_cases(cases, config.data, config.train.seed)
        cases, held_out = train_cases, [c.name for c in val_cases]
    names = [c.name for c in cases]
    return {
        "seed": config.train.seed,
        "held_out": sorted(held_out),
        "folds": [{"val": v} for v in fold_split(names, folds, config.train.seed)],
    }


def _read_plan(out_dir: Path, plan: dict) -> dict:
    """The stored plan with its fold results, checked to be the same folds as ``plan``."""
    path = out_dir / PLAN
    if not path.is_file():
        return plan
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        same = [f["val"] for f in stored["folds"]] == [f["val"] for f in plan["folds"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunDirError(f"{path} cannot be read ({err}); use another --out") from None
    if not same or stored.get("held_out") != plan["held_out"]:
        raise RunDirError(
            f"{out_dir} holds a cross-validation with other folds (other cases, seed, --folds or "
            "--all-cases); use another --out, or the settings that made it"
        )
    return stored


def _train_fold(config: Config, fold_dir: Path) -> None:
    from scseg.engine.multiview_training import train_views
    from scseg.engine.trainer import train

    if config.mode.views:
        train_views(config, fold_dir, resume=(fold_dir / RUN_CONFIG).is_file())
    else:
        train(config, fold_dir, resume=(fold_dir / LAST_CHECKPOINT).is_file())


def crossval(config: Config, out_dir: str | Path, folds: int = 5, all_cases: bool = False) -> CrossvalResult:
    """Train one model per fold into ``out_dir`` (continuing a stopped run), write the fold table
    and, once every fold is trained, the ensemble model.

    Args:
        config: the training config (each fold trains it on the other folds' cases).
        folds: how many folds.
        all_cases: split every case into folds, including the config's validation cases (then no
            case is left to evaluate the ensemble on without bias).

    Raises:
        ConfigError: fewer cases than folds.
        RunDirError: ``out_dir`` holds a cross-validation with other folds.
    """
    out_dir = Path(out_dir)
    plan = _read_plan(out_dir, _plan(config, folds, all_cases))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / RUN_CONFIG, dump_config(config))
    vals = [f["val"] for f in plan["folds"]]
    for index, fold in enumerate(plan["folds"]):
        if fold.get("dice") is not None:
            continue  # finished in an earlier run
        train_names = sorted(n for i, v in enumerate(vals) if i != index for n in v)
        fold_dir = out_dir / f"fold_{index}"
        _train_fold(fold_config(config, train_names, fold["val"]), fold_dir)
        loaded = load_model(fold_dir)
        fold["dice"], fold["epoch"] = loaded.validation_dice, loaded.epoch
        write_text_atomic(out_dir / PLAN, json.dumps(plan, indent=2) + "\n")
    dice = [dict(f["dice"]) for f in plan["folds"]]
    write_fold_table(out_dir, dice)
    assemble_ensemble(config, out_dir, [out_dir / f"fold_{i}" for i in range(len(vals))], dice)
    return CrossvalResult(out_dir, dice)


def fold_table(dice: Sequence[dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per fold and a ``mean`` row; one column per structure and their mean."""
    structures = [s for s in dice[0] if s != "mean"]
    header = ["fold", *structures, "mean"]
    rows = []
    for index, fold in enumerate(dice):
        values = [fold.get(s, float("nan")) for s in structures]
        rows.append([str(index), *(f"{v:.4f}" for v in values), f"{np.nanmean(values):.4f}"])
    means = [float(np.nanmean([f.get(s, float("nan")) for f in dice])) for s in structures]
    rows.append(["mean", *(f"{v:.4f}" for v in means), f"{np.nanmean(means):.4f}"])
    return header, rows


def write_fold_table(out_dir: Path, dice: Sequence[dict[str, float]]) -> None:
    """``folds.csv`` and ``folds.md`` (validation Dice per structure per fold)."""
    header, rows = fold_table(dice)
    write_csv(out_dir / "folds.csv", header, rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "# Cross-validation: validation Dice per fold\n\n" + "\n".join(lines) + "\n"
    write_text_atomic(out_dir / "folds.md", text)


def assemble_ensemble(
    config: Config, out_dir: Path, fold_dirs: Sequence[Path], dice: Sequence[dict[str, float]]
) -> None:
    """Write ``OUT/model.yaml`` and ``OUT/checkpoints/best.pt``: the folds' models as one ensemble,
    whose recorded validation Dice is the folds' mean (each on its own held-out fold)."""
    loaded = [load_model(d) for d in fold_dirs]
    spec = loaded[0].spec.model_copy(deep=True)
    member_specs, weights = [], {}
    for index, model in enumerate(loaded):
        member_specs.append({"name": model.spec.network.name, "options": model.spec.network.options})
        weights.update({f"members.{index}.{key}": value for key, value in model.weights.items()})
    first = spec.network
    spec.network = NetworkSpec(
        name="ensemble",
        spatial_dims=first.spatial_dims,
        in_channels=first.in_channels,
        out_channels=first.out_channels,
        options={"members": member_specs},
    )
    structures = [s for s in dice[0]]
    mean_dice = {s: float(np.nanmean([d.get(s, float("nan")) for d in dice])) for s in structures}
    spec.provenance = Provenance(validation_dice=mean_dice, trained_at=now(), data=spec.provenance.data)
    spec.qc = None  # a member's calibration does not hold for the ensemble's passes
    save_checkpoint(out_dir / BEST_CHECKPOINT, Checkpoint(model=weights, dice=mean_dice, spec=spec.to_dict()))
    write_model_spec(out_dir / MODEL_SPEC, spec)
