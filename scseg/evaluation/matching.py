"""Pair predicted and reference label maps by case name, and find the structure names."""

from __future__ import annotations

import csv
from pathlib import Path

from scseg.config.yaml_io import read_yaml
from scseg.data.cases import case_name
from scseg.errors import ConfigError, DataError
from scseg.evaluation.metrics import MAX_LABEL_VALUE
from scseg.io.dicom_headers import is_nifti
from scseg.io.output_names import CaseFiles


def collect_label_maps(folder: Path) -> dict[str, Path]:
    """Case name -> label map under ``folder``.

    A ``scseg predict`` output tree (``<case>/labels.nii.gz``, or ``<patient>/<study>/<series>/
    labels.nii.gz`` for DICOM) is keyed by the case folder's path; any other folder by file name.
    """
    if folder.is_file():
        return {case_name(folder): folder}
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist")
    outputs = sorted(folder.rglob(CaseFiles.LABELS))
    if outputs:
        return {p.parent.relative_to(folder).as_posix(): p for p in outputs}
    maps: dict[str, Path] = {}
    for path in sorted(p for p in folder.rglob("*") if is_nifti(p)):
        name = case_name(path)
        if name in maps:
            raise DataError(f"two label maps for case {name!r} under {folder}: {maps[name]} and {path}")
        maps[name] = path
    return maps


def match_cases(pred_dir: Path, ref_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(case, prediction, reference) for every prediction, and the reference cases left unpredicted.

    Raises:
        DataError: no prediction found, or a prediction whose case has no reference.
    """
    preds, refs = collect_label_maps(pred_dir), collect_label_maps(ref_dir)
    if not preds:
        raise DataError(f"no label maps (.nii, .nii.gz) found under --pred {pred_dir}")
    # a predict tree keys DICOM cases by patient/study/series; references are matched on the last part
    by_name = {name.rsplit("/", 1)[-1]: name for name in preds}
    unmatched = [name for name in by_name if name not in refs]
    if unmatched:
        raise DataError(
            f"{len(unmatched)} prediction(s) have no reference of the same case name under --ref {ref_dir}: "
            f"{unmatched[:8]}{' ...' if len(unmatched) > 8 else ''} (reference cases look like: {sorted(refs)[:3]})"
        )
    pairs = [(short, preds[full], refs[short]) for short, full in sorted(by_name.items())]
    return pairs, sorted(set(refs) - set(by_name))


def load_names(path: Path) -> dict[int, str]:
    """``names.yaml``: ``1: anterior`` per line (label value -> structure name).

    ``0`` (background), which most label tables (ITK-SNAP, FreeSurfer's LUT) list, is accepted and
    ignored: background is never scored.
    """
    try:
        raw = read_yaml(path)
    except ConfigError as err:
        raise ConfigError(f"{path}: cannot read the names file ({err})") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of label value to name, e.g. '1: anterior'")
    names = {}
    for key, value in raw.items():
        if (
            not isinstance(key, int)
            or isinstance(key, bool)
            or not 0 <= key <= MAX_LABEL_VALUE
            or not isinstance(value, str)
            or not value
        ):
            raise ConfigError(
                f"{path}: entry {key!r}: {value!r}: keys must be label values 0..{MAX_LABEL_VALUE} (0, "
                "background, is ignored), values names"
            )
        if key > 0:
            names[key] = value
    if not names:
        raise ConfigError(
            f"{path}: names only background (0); give at least one structure, e.g. '1: anterior'"
        )
    return names


def names_from_predict_tree(labels: Path) -> dict[int, str] | None:
    """The model's names, from the ``volumes.csv`` that ``scseg predict`` writes next to the labels."""
    volumes = labels.parent / CaseFiles.VOLUMES
    if labels.name != CaseFiles.LABELS or not volumes.is_file():
        return None
    names = {}
    with volumes.open() as f:
        for row in csv.DictReader(f):
            value = (row.get("label_value") or "").strip()
            if not value:  # the left + right sums of a whole-brain prediction have no label value
                continue
            if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= MAX_LABEL_VALUE:
                raise DataError(
                    f"{volumes}: label_value {value[:20]!r} of structure {row.get('structure')!r} is not a "
                    f"label value 1..{MAX_LABEL_VALUE}; give the names with --labels names.yaml instead"
                )
            names[int(value)] = row.get("structure") or f"label_{value}"
    return names or None
