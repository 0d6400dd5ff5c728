"""``scseg evaluate``: score label maps against references, or predict a data split and score it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm.auto import tqdm

from scseg.config import Config, load_config
from scseg.data.annotation import NONEMPTY, case_annotations
from scseg.data.cases import Case, discover_cases, split_cases
from scseg.data.loaders import prepare_dataset
from scseg.engine.predictor import Predictor
from scseg.errors import ConfigError
from scseg.evaluation.matching import load_names, match_cases, names_from_predict_tree
from scseg.evaluation.metrics import StructureScore, evaluate_case, label_array
from scseg.evaluation.quality_control import (
    UncertaintyPoint,
    calibrate_threshold,
    store_threshold,
    write_uncertainty_report,
)
from scseg.evaluation.report import write_report
from scseg.io.atomic import save_nifti_atomic
from scseg.io.dicom_series import find_series, read_series


@dataclass
class EvaluationResult:
    summary: dict
    scores: list[StructureScore]
    unpredicted: list[str]  # reference cases without a prediction (folder mode)
    uncertainty: dict | None = None  # with several passes: correlations with Dice (and the QC calibration)


def _default_names(pairs: list[tuple[str, Path, Path]]) -> dict[int, str]:
    """The model's names stored by ``scseg predict`` (volumes.csv), else ``label_<n>`` for every value found."""
    stored = names_from_predict_tree(pairs[0][1])
    if stored:
        return stored
    values: set[int] = set()
    for case, pred, ref in pairs:
        for path, side in ((pred, "prediction"), (ref, "reference")):
            data = label_array(nib.load(path), case, side)  # refuses values a count array can't hold
            values |= {int(v) for v in np.unique(data[data > 0])}
    return {v: f"label_{v}" for v in sorted(values)}


def only_annotated(
    scores: list[StructureScore], annotated: str | Path | None, names: list[str], cases: list[str]
) -> list[StructureScore]:
    """The scores of the structures each case annotated (``data.annotated``: a CSV, ``nonempty``:
    where the reference holds the structure, or ``None``: all of them)."""
    if annotated is None:
        return scores
    if str(annotated) == NONEMPTY:
        return [s for s in scores if s.volume_ref_ml > 0]
    table = case_annotations(Path(annotated), names, cases)
    assert table is not None
    return [s for s in scores if s.structure in table[s.case]]


def evaluate_folders(
    pred_dir: Path,
    ref_dir: Path,
    out_dir: Path,
    names_file: Path | None = None,
    progress: bool = True,
    annotated: str | Path | None = None,
) -> EvaluationResult:
    """Score every prediction under ``pred_dir`` against the reference of the same case name
    (``annotated``: partial labels, see :func:`only_annotated`)."""
    pairs, unpredicted = match_cases(Path(pred_dir), Path(ref_dir))
    names = load_names(names_file) if names_file else _default_names(pairs)
    scores: list[StructureScore] = []
    for case, pred, ref in tqdm(pairs, desc="evaluate", unit="case", disable=not progress, file=sys.stderr):
        scores += evaluate_case(nib.load(pred), nib.load(ref), names, case)
    scores = only_annotated(scores, annotated, list(names.values()), [case for case, _, _ in pairs])
    title = f"Evaluation of {pred_dir}" + (
        f", each structure where annotated ({annotated})" if annotated else ""
    )
    summary = write_report(Path(out_dir), scores, title=title)
    return EvaluationResult(summary, scores, unpredicted)


def _read_image(case: Case) -> nib.Nifti1Image:
    if case.image.is_dir():
        (series, *_), _ = find_series(case.image)
        return read_series(series)
    return nib.load(case.image)


def _reference(case: Case, values: list[int]) -> nib.Nifti1Image:
    """The case's label map with every value the model does not segment set to 0 (as in training)."""
    label = nib.load(case.label)
    data = np.asanyarray(label.dataobj)
    keep = np.isin(data, values)
    return nib.Nifti1Image(np.where(keep, data, 0).astype(np.int32), label.affine)


def evaluate_model(
    model: Path,
    data: Path | Config,
    out_dir: Path,
    split: str = "val",
    device: str = "auto",
    overrides: list[str] | None = None,
    progress: bool = True,
    precision: str = "auto",
    tta: bool = False,
    mc_dropout: int = 0,
    calibrate_qc: bool = False,
    qc_dice: float = 0.7,
) -> EvaluationResult:
    """Predict the ``split`` (``val`` or ``all``) of the data a training config describes and score it.

    Args:
        model: a run directory, bundle or checkpoint (only its model artefact is read).
        data: the training config (file or loaded) whose ``data`` section and split to predict.
        tta, mc_dropout: as for :class:`~scseg.engine.predictor.Predictor`. With several passes
            (these, or an ensemble model) the structures' uncertainty is reported against their Dice
            (:mod:`scseg.evaluation.quality_control`).
        calibrate_qc: store the QC threshold that best flags structures with Dice < ``qc_dice`` in
            the model artefact.

    Predictions are kept in ``out_dir/predictions/<case>.nii.gz``.
    """
    config = data if isinstance(data, Config) else load_config(data, overrides or [])
    prepare_dataset(config)
    cases = discover_cases(config.data)
    if split == "val":
        cases = split_cases(cases, config.data, config.train.seed)[1]
    predictor = Predictor(model, device=device, precision=precision, tta=tta, mc_dropout=mc_dropout)
    if calibrate_qc and predictor.passes == 1:
        raise ConfigError(
            "--calibrate-qc needs an uncertainty to calibrate: add --tta or --mc-dropout N, or evaluate "
            "an ensemble model (scseg crossval)"
        )
    names = dict(zip(predictor.label_values, predictor.label_names, strict=True))
    scores: list[StructureScore] = []
    points: list[UncertaintyPoint] = []
    for case in tqdm(cases, desc="predict + evaluate", unit="case", disable=not progress, file=sys.stderr):
        prediction = predictor.predict(_read_image(case))
        save_nifti_atomic(prediction.labels, Path(out_dir) / "predictions" / f"{case.name}.nii.gz")
        case_scores = evaluate_case(
            prediction.labels, _reference(case, predictor.label_values), names, case.name
        )
        scores += case_scores
        dice = {s.structure: s.dice for s in case_scores}
        points += [
            UncertaintyPoint(case.name, u.structure, u.uncertainty, dice[u.structure])
            for u in prediction.uncertainty or []
        ]
    annotated = config.data.annotation_table or config.data.annotated
    scores = only_annotated(scores, annotated, list(names.values()), [case.name for case in cases])
    source = "its config" if isinstance(data, Config) else str(data)
    title = f"Evaluation of {model} on {source} ({split})"
    if annotated is not None:
        title += ", each structure where annotated (data.annotated)"
    if predictor.passes > 1:
        title += f", {predictor.passes} passes ({predictor.pass_kind})"
    summary = write_report(Path(out_dir), scores, title=title)
    report = None
    if points:
        # structures every validation reference has: a prediction that misses one is flagged
        cases_with = {
            name: {s.case for s in scores if s.structure == name and s.volume_ref_ml > 0}
            for name in names.values()
        }
        expected = [name for name, found in cases_with.items() if len(found) == len(cases)]
        qc = calibrate_threshold(points, qc_dice, predictor.pass_kind, expected) if calibrate_qc else None
        report = write_uncertainty_report(Path(out_dir), points, qc)
        if qc is not None:
            report["stored_in"] = str(store_threshold(Path(model), qc))
    return EvaluationResult(summary, scores, [], report)
