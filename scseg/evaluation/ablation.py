"""``scseg ablate``: every architecture x SE kind (x 2D/3D) [x seed] [x a swept option] trained with
the same split and budget, evaluated on the validation split, and tabulated as in Roy et al.
(IEEE TMI 2019).

Each cell lives in ``OUT/<dims>d_<arch>_<se>[_<option>-<value>][_s<seed>]/`` (``run/`` from
training, ``evaluation/`` from :func:`scseg.evaluation.evaluate.evaluate_model`); a cell with
``evaluation/summary.json`` is done and skipped when the command is run again, an interrupted one
resumes its training. With ``results_dir`` each finished cell is also kept as one JSON file there
(e.g. ``docs/results/<study>/``): a study is then re-tabled, or resumed, from those files alone,
without its run folders. Multi-seed or swept studies are tabled by
:mod:`scseg.evaluation.study_tables`.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import numpy as np

from scseg.artefact import ModelSpec, build_network, load_checkpoint, load_model
from scseg.artefact.layout import LAST_CHECKPOINT
from scseg.config import config_from_dict
from scseg.config.load import read_raw_config
from scseg.engine.device import describe_device, resolve_device
from scseg.engine.trainer import train
from scseg.errors import ConfigError
from scseg.evaluation.evaluate import evaluate_model
from scseg.evaluation.study_cells import Cell, cell_config, study_cells
from scseg.evaluation.study_tables import splice_tables, study_markdown
from scseg.io.atomic import write_text_atomic

MISSING_NAMED = 6  # --table-only names this many unfinished cells, then counts the rest


def _parameters(spec: ModelSpec) -> int:
    return sum(p.numel() for p in build_network(spec.network).parameters())


def _per_case(per_case_csv: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Dice per case and structure (where defined), and each structure's mean reference volume."""
    dice: dict[str, dict[str, float]] = {}
    volumes: dict[str, list[float]] = {}
    with per_case_csv.open() as f:
        for row in csv.DictReader(f):
            if row["metric"] == "dice" and row["value"]:
                dice.setdefault(row["case"], {})[row["structure"]] = float(row["value"])
            elif row["metric"] == "volume_ref_ml" and row["value"]:
                volumes.setdefault(row["structure"], []).append(float(row["value"]))
    return dice, {s: float(np.mean(v)) for s, v in volumes.items()}


def _training_record(run_dir: Path) -> tuple[int | None, float | None]:
    """The last checkpoint's epoch and training minutes: how far the budget got this cell, and at
    what cost (summed over resumes; what equal-wall-clock readings compare)."""
    last = run_dir / LAST_CHECKPOINT
    if not last.is_file():
        return None, None
    checkpoint = load_checkpoint(last)
    minutes = checkpoint.training.elapsed_s / 60 if checkpoint.training is not None else None
    return checkpoint.epoch, minutes


def run_cell(
    raw: dict,
    base: Path,
    cell: Cell,
    out_dir: Path,
    time_limit_minutes: float | None,
    device: str = "auto",
    epochs: int | None = None,
    results_dir: Path | None = None,
) -> dict:
    """Train and evaluate one cell (or load it when done); returns its result row.

    ``base`` is the config's folder, against which a relative ``data.root`` is resolved. A cell
    whose JSON is in ``results_dir`` is read from there (its run folder may be gone).
    """
    kept = _kept_json(cell, results_dir)
    if kept is not None and kept.is_file():
        return json.loads(kept.read_text())
    folder = out_dir / cell.name
    config = cell_config(raw, cell, time_limit_minutes, epochs)
    summary_path = _summary_json(cell, out_dir)
    machine_file = folder / "train_machine.txt"
    if not summary_path.is_file():
        run_dir = folder / "run"
        resume = (run_dir / "checkpoints" / "last.pt").is_file()
        cell_cfg = config_from_dict(copy.deepcopy(config), cell.name, base)
        train(cell_cfg, run_dir, resume=resume)
        # after training, which may have set train.num_threads; kept beside the run so that a row
        # re-read from the folder later says the same
        write_text_atomic(
            machine_file, describe_device(resolve_device(cell_cfg.train.device, "train.device"))
        )
        evaluate_model(run_dir, cell_cfg, folder / "evaluation", split="val", device=device)
    summary = json.loads(summary_path.read_text())
    case_dice, volumes = _per_case(folder / "evaluation" / "per_case.csv")
    case_means = {case: float(np.mean(list(v.values()))) for case, v in case_dice.items()}
    spec = load_model(folder / "run").spec  # the trained cell's own artefact
    none = spec.model_copy(deep=True)
    none.network.options["se"] = "none"
    params, params_none = _parameters(spec), _parameters(none)
    epochs_trained, train_minutes = _training_record(folder / "run")
    row = {
        "cell": cell.name,
        "epochs": epochs_trained,
        "train_minutes": train_minutes,
        "dims": cell.dims,
        "arch": cell.arch,
        "se": cell.se,
        "mean_dice": summary["mean_dice"],
        "case_dice_std": float(np.std(list(case_means.values()))) if case_means else math.nan,
        "cases": len(case_means),
        "case_dice": case_means,
        "per_structure_dice": {k: v["dice_mean"] for k, v in summary["per_structure"].items()},
        "parameters": params,
        "se_overhead_percent": 100.0 * (params / params_none - 1.0),
        "seed": cell.seed,
        "variant": cell.variant,
        # the training forward's precision on CPU (float32 unless train.cpu_amp; CUDA: train.amp)
        "train_cpu_amp": bool(config.get("train", {}).get("cpu_amp", False)),
        # minutes are only comparable on one machine: rows record which one trained them
        "train_machine": machine_file.read_text() if machine_file.is_file() else None,
        "network_options": json.loads(json.dumps(spec.network.options, default=str)),  # its actual width etc.
        "case_structure_dice": case_dice,
        "structure_volume_ml": volumes,
    }
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(kept, json.dumps(row, indent=1, sort_keys=True) + "\n")
    return row


def _paired_table(dims: int, archs: list[str], kinds: list[str], cell: dict) -> list[str]:
    """Per-case Dice difference to the same architecture without SE: mean ± 2 standard errors.

    Paired over the same validation cases, so it resolves differences that the spread across
    cases (the sd above) hides; an interval that excludes 0 is a difference beyond case sampling
    noise (one seed: training noise is not in it).
    """
    lines = ["", f"## {dims}D: Dice change vs none, paired over cases (mean ± 2 SE)", ""]
    lines += ["| architecture | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for arch in archs:
        base = cell.get((arch, "none"))
        values = []
        for kind in kinds:
            r = cell.get((arch, kind))
            if base is None or r is None:
                values.append("-")
                continue
            shared = sorted(set(base["case_dice"]) & set(r["case_dice"]))
            diff = np.array([r["case_dice"][c] - base["case_dice"][c] for c in shared])
            se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else math.nan
            values.append(f"{diff.mean():+.3f} ± {2 * se:.3f}")
        lines.append(f"| {arch} | " + " | ".join(values) + " |")
    return lines


def results_markdown(rows: list[dict], header: str) -> str:
    """Paper-style tables per dimensionality: Dice (mean ± sd over cases), parameters, per structure."""
    lines = [header, ""]
    for dims in sorted({r["dims"] for r in rows}, reverse=True):
        part = [r for r in rows if r["dims"] == dims]
        archs = list(dict.fromkeys(r["arch"] for r in part))
        kinds = list(dict.fromkeys(r["se"] for r in part))
        cell = {(r["arch"], r["se"]): r for r in part}
        lines += [f"## {dims}D: mean Dice ± sd over validation cases", ""]
        lines += ["| architecture | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for arch in archs:
            values = []
            for kind in kinds:
                r = cell.get((arch, kind))
                values.append("-" if r is None else f"{r['mean_dice']:.3f} ± {r['case_dice_std']:.3f}")
            lines.append(f"| {arch} | " + " | ".join(values) + " |")
        if "none" in kinds and len(kinds) > 1:
            lines += _paired_table(dims, archs, [k for k in kinds if k != "none"], cell)
        lines += ["", f"## {dims}D: parameters (SE overhead vs none), epochs trained in the budget", ""]
        lines += ["| architecture | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for arch in archs:
            values = []
            for kind in kinds:
                r = cell.get((arch, kind))
                values.append(
                    "-"
                    if r is None
                    else f"{r['parameters'] / 1e6:.3f} M ({r['se_overhead_percent']:+.2f} %), {r['epochs']} ep."
                )
            lines.append(f"| {arch} | " + " | ".join(values) + " |")
        structures = list(dict.fromkeys(s for r in part for s in r["per_structure_dice"]))
        lines += ["", f"## {dims}D: Dice per structure", ""]
        lines += [
            "| architecture | se | " + " | ".join(structures) + " |",
            "|---|---|" + "---|" * len(structures),
        ]
        for r in part:
            values = [r["per_structure_dice"].get(s) for s in structures]
            lines.append(
                f"| {r['arch']} | {r['se']} | "
                + " | ".join("n/a" if v is None else f"{v:.3f}" for v in values)
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def ablate(
    config_path: Path,
    archs: list[str],
    kinds: list[str],
    dims: list[int],
    time_limit_minutes: float | None,
    out_dir: Path,
    device: str = "auto",
    overrides: list[str] | None = None,
    seeds: list[int] | None = None,
    epochs: int | None = None,
    vary: str | None = None,
    results_dir: Path | None = None,
    table_only: bool = False,
    into: Path | None = None,
) -> list[dict]:
    """Run (or resume) every cell, then write ``OUT/results.md`` and ``OUT/results.json``.

    Args:
        seeds: train every cell once per seed (default: the config's seed, once).
        epochs: train every cell this many epochs instead of ``time_limit_minutes``.
        vary: sweep one option over the SE cells, ``model.se_reduction=2,4,8,16`` (``none`` cells
            are trained once per seed, without it); ``ARCH:VALUE`` is one architecture's own value
            (``train.max_epochs=unet:816,resunet:840``: each its own budget, in one table).
        results_dir: keep each finished cell as JSON there (see the module docstring).
        table_only: train nothing: table the finished cells and name the others.
        into: also put the tables into this Markdown write-up, between the markers of
            :func:`~scseg.evaluation.study_tables.table_markers`, keyed by the results folder's
            name (else ``out_dir``'s) and the swept option: ``study``, ``study, vary model.se_reduction``.
    """
    if (time_limit_minutes is None) == (epochs is None):
        raise ConfigError("ablate: give either a time limit per cell or a number of epochs, not both")
    config_path = Path(config_path)
    raw, base = read_raw_config(config_path, overrides or []), config_path.parent
    cells = study_cells(raw, base, dims, archs, kinds, seeds, vary, time_limit_minutes, epochs)
    budget = f"{epochs} epochs" if epochs is not None else f"{time_limit_minutes:g} min"
    study = bool(seeds) or bool(vary)
    header = (
        f"# Ablation: {config_path}\n\nEvery cell trained with the same split and budget ({budget})"
        + (f", seeds {', '.join(map(str, seeds))}" if seeds else ", one seed")
        + ", evaluated on the validation split."
    )
    if table_only:
        missing = [c.name for c in cells if not _finished(c, out_dir, results_dir)]
        shown = ", ".join(missing[:MISSING_NAMED]) + (
            f" and {len(missing) - MISSING_NAMED} more" if len(missing) > MISSING_NAMED else ""
        )
        header += f"\n\n{len(cells) - len(missing)} of {len(cells)} cells finished" + (
            f"; not yet run: {shown}." if missing else "."
        )
        cells = [c for c in cells if c.name not in missing]
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    table = header
    for cell in [None, *cells]:  # None: the tables exist even before (or without) a first cell
        if cell is not None:
            row = run_cell(raw, base, cell, out_dir, time_limit_minutes, device, epochs, results_dir)
            rows.append(
                {**row, "variant": f"{cell.default_variant} (default)"} if cell.default_variant else row
            )
        table = study_markdown(rows, header) if study else results_markdown(rows, header)
        write_text_atomic(out_dir / "results.md", table)
        write_text_atomic(out_dir / "results.json", json.dumps(rows, indent=2))
    if into is not None:  # one block per results folder and swept option
        splice_tables(
            into, table, (results_dir or out_dir).name + (f", vary {vary.partition('=')[0]}" if vary else "")
        )
    return rows


def _kept_json(cell: Cell, results_dir: Path | None) -> Path | None:
    """Where ``cell``'s result row is kept (None when the study keeps no JSON)."""
    return results_dir / f"{cell.name}.json" if results_dir is not None else None


def _summary_json(cell: Cell, out_dir: Path) -> Path:
    """The evaluation summary of ``cell``'s run folder, present once it is trained and scored."""
    return out_dir / cell.name / "evaluation" / "summary.json"


def _finished(cell: Cell, out_dir: Path, results_dir: Path | None) -> bool:
    """Whether ``cell`` has its result: kept JSON, or an evaluated run folder."""
    kept = _kept_json(cell, results_dir)
    return (kept is not None and kept.is_file()) or _summary_json(cell, out_dir).is_file()
