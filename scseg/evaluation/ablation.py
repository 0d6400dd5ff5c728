"""``scseg ablate``: every architecture x SE kind (x 2D/3D) trained with one seed, split and budget,
evaluated on the validation split, and tabulated as in Roy et al. (IEEE TMI 2019).

Each cell lives in ``OUT/<dims>d_<arch>_<se>/`` (``run/`` from training, ``evaluation/`` from
:func:`scseg.evaluation.evaluate.evaluate_model`); a cell with ``evaluation/summary.json`` is done
and skipped when the command is run again, an interrupted one resumes its training.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scseg.artefact import ModelSpec, build_network, load_checkpoint, load_model
from scseg.artefact.layout import LAST_CHECKPOINT
from scseg.config import config_from_dict
from scseg.config.load import read_raw_config
from scseg.config.schema import SLICE_AXIS_INDEX
from scseg.engine.trainer import train
from scseg.errors import ConfigError
from scseg.evaluation.evaluate import evaluate_model
from scseg.io.atomic import write_text_atomic
from scseg.nn.registry import shared_options

STRUCTURAL_KEYS = ("name", "spatial_dims", "in_channels")
SAMPLES_PER_VOLUME_2D = 8  # 2D cells derived from a 3D config draw this many slices per volume


@dataclass
class Cell:
    dims: int
    arch: str
    se: str

    @property
    def name(self) -> str:
        return f"{self.dims}d_{self.arch}_{self.se}"


def cell_config(raw: dict, cell: Cell, time_limit_minutes: float) -> dict:
    """The config of one cell: ``raw`` with the architecture, SE kind, dimensionality and budget set.

    A 2D cell from a 3D config slices along ``mode.slice_axis`` (coronal by default) with the
    patch's in-plane size; a 3D cell needs a 3D config.
    """
    raw = copy.deepcopy(raw)
    model = raw.setdefault("model", {})
    source_arch = model.get("name", "unet")
    if source_arch != cell.arch:  # keep only the options that mean the same in the cell's architecture
        keep = shared_options(source_arch, cell.arch)
        for key in [k for k in model if k not in STRUCTURAL_KEYS and k not in keep]:
            del model[key]
    model.update(name=cell.arch, se=cell.se)
    model.pop("spatial_dims", None)
    mode = raw.setdefault("mode", {})
    config_dims = 3 if mode.get("type", "3d") == "3d" else 2
    if cell.dims != config_dims:
        if config_dims == 2:
            raise ConfigError(
                "ablation with --dims 3 needs a 3D config (mode.type: 3d) to take the patch size from"
            )
        patch = list(mode["patch_size"])
        del patch[SLICE_AXIS_INDEX[mode.get("slice_axis", "coronal")]]
        mode.update(type="2d", patch_size=patch)
        mode["samples_per_volume"] = max(int(mode.get("samples_per_volume", 1)), SAMPLES_PER_VOLUME_2D)
    raw.setdefault("train", {})["time_limit_minutes"] = time_limit_minutes
    return raw


def _parameters(spec: ModelSpec) -> int:
    return sum(p.numel() for p in build_network(spec.network).parameters())


def _case_mean_dice(per_case_csv: Path) -> dict[str, float]:
    """Per case: the mean Dice over its structures (where defined)."""
    per_case: dict[str, list[float]] = {}
    with per_case_csv.open() as f:
        for row in csv.DictReader(f):
            if row["metric"] == "dice" and row["value"]:
                per_case.setdefault(row["case"], []).append(float(row["value"]))
    return {case: float(np.mean(v)) for case, v in per_case.items()}


def _epochs_trained(run_dir: Path) -> int | None:
    """The last checkpoint's epoch: how far the budget got this cell."""
    last = run_dir / LAST_CHECKPOINT
    return load_checkpoint(last).epoch if last.is_file() else None


def run_cell(
    raw: dict, base: Path, cell: Cell, out_dir: Path, time_limit_minutes: float, device: str = "auto"
) -> dict:
    """Train and evaluate one cell (or load it when done); returns its result row.

    ``base`` is the config's folder, against which a relative ``data.root`` is resolved.
    """
    folder = out_dir / cell.name
    config = cell_config(raw, cell, time_limit_minutes)
    summary_path = folder / "evaluation" / "summary.json"
    if not summary_path.is_file():
        run_dir = folder / "run"
        resume = (run_dir / "checkpoints" / "last.pt").is_file()
        cell_cfg = config_from_dict(copy.deepcopy(config), cell.name, base)
        train(cell_cfg, run_dir, resume=resume)
        evaluate_model(run_dir, cell_cfg, folder / "evaluation", split="val", device=device)
    summary = json.loads(summary_path.read_text())
    case_means = _case_mean_dice(folder / "evaluation" / "per_case.csv")
    spec = load_model(folder / "run").spec  # the trained cell's own artefact
    none = spec.model_copy(deep=True)
    none.network.options["se"] = "none"
    params, params_none = _parameters(spec), _parameters(none)
    return {
        "cell": cell.name,
        "epochs": _epochs_trained(folder / "run"),
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
    }


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
    time_limit_minutes: float,
    out_dir: Path,
    device: str = "auto",
    overrides: list[str] | None = None,
) -> list[dict]:
    """Run (or resume) every cell, then write ``OUT/results.md`` and ``OUT/results.json``."""
    config_path = Path(config_path)
    raw, base = read_raw_config(config_path, overrides or []), config_path.parent
    cells = [Cell(d, a, s) for d in dims for a in archs for s in kinds]
    for cell in cells:  # fail fast on a bad combination (e.g. pe in 2D) before hours of training
        try:
            config_from_dict(cell_config(raw, cell, time_limit_minutes), cell.name, base)
        except ConfigError as err:
            raise ConfigError(f"ablation cell {cell.name}: {err}") from None
    rows = []
    for cell in cells:
        rows.append(run_cell(raw, base, cell, out_dir, time_limit_minutes, device))
        header = (
            f"# Ablation: {config_path}\n\nEvery cell trained with the same seed, split and budget "
            f"({time_limit_minutes:g} min), evaluated on the validation split."
        )
        write_text_atomic(out_dir / "results.md", results_markdown(rows, header))
        write_text_atomic(out_dir / "results.json", json.dumps(rows, indent=2))
    return rows
