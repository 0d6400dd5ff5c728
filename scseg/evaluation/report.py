"""Evaluation outputs: per_case.csv (long format), summary.json, summary.md, a Dice box plot and Dice
against structure size."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scseg.evaluation.metrics import (
    ABSENT_IN_BOTH,
    ABSENT_IN_PREDICTION,
    ABSENT_IN_REFERENCE,
    METRICS,
    StructureScore,
)
from scseg.io.atomic import atomic_write_bytes, write_text_atomic
from scseg.io.csv_report import write_csv

SUMMARY_METRICS = ("dice", "hd95", "assd", "volume_diff_ml", "volume_diff_percent")


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    finite = _finite(values)
    if not finite:
        return None, None
    return float(np.mean(finite)), float(np.std(finite))


def summarise(scores: Sequence[StructureScore]) -> dict:
    """``{"per_structure": {name: {"dice_mean", "dice_std", "hd95_mean", ...}}, "mean_dice": x}``.

    Means skip undefined values (NaN): a structure absent from both sides, and surface distances
    where one side is empty. The counts of such cases are reported next to the means.
    """
    per_structure: dict[str, dict] = {}
    for name in dict.fromkeys(s.structure for s in scores):
        rows = [s for s in scores if s.structure == name]
        entry: dict[str, float | int | None] = {}
        for metric in SUMMARY_METRICS:
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = _mean_std([getattr(s, metric) for s in rows])
        entry["volume_ref_ml_mean"] = float(np.mean([s.volume_ref_ml for s in rows]))  # the size
        entry["cases"] = len(rows)
        entry["absent_in_both"] = sum(s.note == ABSENT_IN_BOTH for s in rows)
        entry["missed"] = sum(s.note == ABSENT_IN_PREDICTION for s in rows)
        entry["false_positive"] = sum(s.note == ABSENT_IN_REFERENCE for s in rows)
        per_structure[name] = entry
    dice_means = [e["dice_mean"] for e in per_structure.values() if e["dice_mean"] is not None]
    return {"per_structure": per_structure, "mean_dice": float(np.mean(dice_means)) if dice_means else None}


def write_per_case(path: Path, scores: Sequence[StructureScore]) -> None:
    """Long format: case, structure, label_value, metric, value (empty when undefined), note."""
    rows = (
        [s.case, s.structure, s.label_value, metric, "" if math.isnan(v) else f"{v:.6g}", s.note]
        for s in scores
        for metric, v in ((m, getattr(s, m)) for m in METRICS)
    )
    write_csv(path, ["case", "structure", "label_value", "metric", "value", "note"], rows)


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    return "n/a" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_markdown(summary: dict, n_cases: int, title: str = "Evaluation") -> str:
    """The summary as a Markdown table: one row per structure, mean ± sd per metric."""
    lines = [
        f"# {title}",
        "",
        f"{n_cases} cases; a structure's figures rest on its `cases`. Mean ± sd over the cases where a metric "
        "is defined; HD95 and ASSD in mm.",
        "",
        "| structure | cases | reference (mL) | Dice | HD95 (mm) | ASSD (mm) | volume diff (mL) | volume diff (%) "
        "| absent both / missed / false pos. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in summary["per_structure"].items():
        lines.append(
            f"| {name} | {e['cases']} | {e['volume_ref_ml_mean']:.2f} | {_fmt(e['dice_mean'], e['dice_std'], 3)} | {_fmt(e['hd95_mean'], e['hd95_std'], 2)} | "
            f"{_fmt(e['assd_mean'], e['assd_std'], 2)} | {_fmt(e['volume_diff_ml_mean'], e['volume_diff_ml_std'], 2)} | "
            f"{_fmt(e['volume_diff_percent_mean'], e['volume_diff_percent_std'], 1)} | "
            f"{e['absent_in_both']} / {e['missed']} / {e['false_positive']} |"
        )
    mean = summary["mean_dice"]
    lines += ["", f"**Mean Dice over structures: {'n/a' if mean is None else f'{mean:.4f}'}**", ""]
    return "\n".join(lines)


def dice_boxplot(path: Path, scores: Sequence[StructureScore], title: str = "Dice per structure") -> None:
    """One box per structure (cases where Dice is defined), with the points on top."""
    names = list(dict.fromkeys(s.structure for s in scores))
    data = [_finite([s.dice for s in scores if s.structure == n]) for n in names]
    # the Figure API (not pyplot): no global backend switch, so notebooks keep showing figures
    fig = Figure(figsize=(max(4.0, 0.6 * len(names) + 2), 4.5))
    ax = fig.subplots()
    ax.boxplot([d if d else [math.nan] for d in data], showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=8, alpha=0.6, color="tab:blue")
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(names) > 8:
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    save_figure(fig, path)


def save_figure(fig: Figure, path: Path) -> None:
    """A figure as a PNG, written atomically (tight layout, 100 dpi)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, lambda f: f.write(buffer.getvalue()))


def dice_vs_size_plot(path: Path, summary: dict, title: str = "Dice against structure size") -> None:
    """Mean Dice of each structure against its mean reference volume (log scale); the smallest
    structures are where a many-label model fails first. Cortical regions (``ctx-``) in orange."""
    entries = [(n, e) for n, e in summary["per_structure"].items() if e["dice_mean"] is not None]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for cortical, colour, label in ((False, "tab:blue", "other structures"), (True, "tab:orange", "cortex")):
        chosen = [e for n, e in entries if n.startswith("ctx-") == cortical]
        if chosen:
            sizes = [max(e["volume_ref_ml_mean"], 1e-3) for e in chosen]
            ax.scatter(sizes, [e["dice_mean"] for e in chosen], s=14, alpha=0.75, color=colour, label=label)
    ax.set_xscale("log")
    ax.set(xlabel="mean reference volume (mL)", ylabel="mean Dice", ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    if entries:
        ax.legend(loc="lower right")
    save_figure(fig, path)


def write_report(out_dir: Path, scores: Sequence[StructureScore], title: str = "Evaluation") -> dict:
    """All four outputs into ``out_dir``; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(scores)
    n_cases = len({s.case for s in scores})
    write_per_case(out_dir / "per_case.csv", scores)
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    write_text_atomic(out_dir / "summary.md", summary_markdown(summary, n_cases, title))
    dice_boxplot(out_dir / "dice_boxplot.png", scores)
    dice_vs_size_plot(out_dir / "dice_vs_size.png", summary)
    return summary
