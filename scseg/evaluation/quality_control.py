"""Does a structure's uncertainty say something about its Dice? Measured, and turned into a QC threshold.

``scseg evaluate --model M --data C --tta`` (or an ensemble model) pairs every validation structure's
uncertainty (:mod:`scseg.engine.uncertainty`) with its Dice: ``uncertainty.csv``, the Spearman
correlation overall and per structure, and ``uncertainty_vs_dice.png``. With ``--calibrate-qc`` the
threshold that best separates failed structures (Dice below ``--qc-dice``) from good ones (Youden's
J: sensitivity minus false-alarm rate) is stored in the model artefact, where ``scseg predict``
finds it and flags cases whose most uncertain structure exceeds it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from scseg.artefact.layout import BUNDLE_MODEL_SPEC, MODEL_SPEC, is_bundle, read_model_spec, write_model_spec
from scseg.artefact.test_time import QualityControlSpec
from scseg.errors import RunDirError
from scseg.evaluation.report import save_figure
from scseg.io.atomic import write_text_atomic
from scseg.io.csv_report import write_csv


@dataclass(frozen=True)
class UncertaintyPoint:
    case: str
    structure: str
    uncertainty: float
    dice: float


def _scored(points: Sequence[UncertaintyPoint]) -> list[UncertaintyPoint]:
    """Points with a Dice (not absent from both sides) and an uncertainty (found by some pass)."""
    return [p for p in points if math.isfinite(p.dice) and math.isfinite(p.uncertainty)]


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def correlations(points: Sequence[UncertaintyPoint]) -> dict:
    """Spearman correlation of uncertainty and Dice over all points and per structure (``None``
    where a structure has fewer than 3 scored cases or no spread)."""
    scored = _scored(points)
    per_structure = {}
    for name in dict.fromkeys(p.structure for p in scored):
        mine = [p for p in scored if p.structure == name]
        per_structure[name] = _spearman([p.uncertainty for p in mine], [p.dice for p in mine])
    return {
        "spearman": _spearman([p.uncertainty for p in scored], [p.dice for p in scored]),
        "points": len(scored),
        "per_structure": per_structure,
    }


def calibrate_threshold(
    points: Sequence[UncertaintyPoint], dice_cutoff: float, passes: str, expected: Sequence[str] = ()
) -> QualityControlSpec:
    """The uncertainty threshold that best separates structures with Dice < ``dice_cutoff``.

    Candidate thresholds lie halfway between consecutive observed uncertainties; the one with the
    largest Youden's J wins (ties: the higher threshold, fewer false alarms). Without any failure on
    the validation cases, the threshold is the largest uncertainty seen there: only cases less
    certain than every validation case get flagged. Structures no pass found have no uncertainty
    and are left out; ``expected`` (present in every validation reference) flags them by name.

    Example:
        >>> pts = [UncertaintyPoint("a", "s", u, d) for u, d in [(0.05, 0.9), (0.1, 0.85), (0.4, 0.5), (0.6, 0.3)]]
        >>> qc = calibrate_threshold(pts, 0.7, "tta")
        >>> round(qc.threshold, 3), qc.sensitivity, qc.false_alarms
        (0.25, 1.0, 0.0)
    """
    scored = _scored(points)
    if not scored:
        raise RunDirError("no structure could be scored on the validation cases: nothing to calibrate on")
    u = np.array([p.uncertainty for p in scored])
    failed = np.array([p.dice < dice_cutoff for p in scored])
    cases = len({p.case for p in scored})
    spearman = _spearman(list(u), [p.dice for p in scored])
    if not failed.any() or failed.all():
        threshold = float(u.max()) if not failed.any() else float(u.min())
        return QualityControlSpec(
            threshold=min(1.0, threshold),
            passes=passes,
            dice_cutoff=dice_cutoff,
            cases=cases,
            correlation=spearman,
            expected=list(expected),
        )
    levels = np.unique(u)
    candidates = (levels[:-1] + levels[1:]) / 2 if len(levels) > 1 else levels
    best = (-2.0, 0.0, 0.0, 0.0)
    for t in candidates:
        flagged = u > t
        sensitivity = float(flagged[failed].mean())
        false_alarms = float(flagged[~failed].mean())
        j = sensitivity - false_alarms
        if j >= best[0]:
            best = (j, float(t), sensitivity, false_alarms)
    _, threshold, sensitivity, false_alarms = best
    return QualityControlSpec(
        threshold=threshold,
        passes=passes,
        dice_cutoff=dice_cutoff,
        cases=cases,
        correlation=spearman,
        sensitivity=sensitivity,
        false_alarms=false_alarms,
        expected=list(expected),
    )


def store_threshold(model: Path, qc: QualityControlSpec) -> Path:
    """Write ``qc`` into the model artefact's description (run directory or bundle); returns the file.

    Raises:
        RunDirError: a lone checkpoint (its description is inside the weights file; calibrate the
            run directory or bundle it came from).
    """
    model = Path(model)
    if model.is_dir() and is_bundle(model):
        path = model / BUNDLE_MODEL_SPEC
    elif model.is_dir() and (model / MODEL_SPEC).is_file():
        path = model / MODEL_SPEC
    else:
        raise RunDirError(
            f"--calibrate-qc: {model} is not a run directory or bundle with a model description to "
            "store the threshold in (lone checkpoints are not rewritten)"
        )
    spec = read_model_spec(path)
    spec.qc = qc
    write_model_spec(path, spec)
    return path


def write_uncertainty_report(
    out_dir: Path, points: Sequence[UncertaintyPoint], qc: QualityControlSpec | None = None
) -> dict:
    """``uncertainty.csv``, ``uncertainty.json`` (correlations, QC) and ``uncertainty_vs_dice.png``."""
    write_csv(
        out_dir / "uncertainty.csv",
        ["case", "structure", "uncertainty", "dice"],
        (
            [
                p.case,
                p.structure,
                f"{p.uncertainty:.4f}" if math.isfinite(p.uncertainty) else "",
                f"{p.dice:.4f}",
            ]
            for p in points
        ),
    )
    report = correlations(points)
    if qc is not None:
        report["qc"] = qc.model_dump()
    write_text_atomic(out_dir / "uncertainty.json", json.dumps(report, indent=2) + "\n")
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    scored = _scored(points)
    ax.scatter([p.uncertainty for p in scored], [p.dice for p in scored], s=12, alpha=0.6)
    if qc is not None:
        ax.axvline(qc.threshold, color="tab:red", linestyle="--", label=f"QC threshold {qc.threshold:.3f}")
        ax.axhline(qc.dice_cutoff, color="grey", linestyle=":", label=f"Dice {qc.dice_cutoff:g}")
        ax.legend(loc="lower left")
    rho = report["spearman"]
    title = "uncertainty against Dice" + (f" (Spearman {rho:.2f})" if rho is not None else "")
    ax.set(xlabel="structure uncertainty (1 - IoU of the passes)", ylabel="Dice", ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    save_figure(fig, out_dir / "uncertainty_vs_dice.png")
    return report
