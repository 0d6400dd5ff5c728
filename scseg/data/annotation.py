"""Which structures were annotated in which case: partial labels, as clinical data really is.

In radiotherapy planning data not every organ is contoured for every patient. A label value of 0
then means "background" only for the structures that were contoured in that case; for the others
it means "unknown". Training that treats it as background teaches the model to miss those organs.

``data.annotated`` says, per case, which structures were annotated:

- a CSV (relative to ``data.root``) with a ``case`` (or ``name``) column and one 0/1 column per
  structure name, like OpenKBP's ``contoured.csv``; other columns are ignored;
- ``nonempty``: a structure counts as annotated in a case where it has at least one voxel (for
  merged datasets where an absent structure was simply not drawn);
- unset: every structure is annotated in every case (the usual, full labels).

Each case then carries an ``annotated`` vector over the output classes (1: annotated; background is
always 1), which the loss (:class:`scseg.engine.losses.WeightedCEDiceLoss`) and ``scseg evaluate``
use: the loss does not punish predictions of a structure the case has no annotation for, and
evaluation scores a structure only in the cases that annotated it.
"""

from __future__ import annotations

import csv
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.transforms import MapTransform

from scseg.errors import ConfigError, DataError

if TYPE_CHECKING:
    from scseg.config.schema import Config

ANNOTATED_KEY = "annotated"
NONEMPTY = "nonempty"
_CASE_COLUMNS = ("case", "name")


def read_annotation_table(path: Path, names: Sequence[str]) -> dict[str, set[str]]:
    """Case name -> the structures annotated in it, from a CSV (see the module docstring).

    Raises:
        ConfigError: the file is missing or unreadable, has no case column, lacks a structure's
            column, or holds a value other than 0 / 1.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            columns = list(rows[0]) if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"data.annotated: cannot read {path}: {err}") from None
    case_column = next((c for c in _CASE_COLUMNS if c in columns), None)
    missing = [n for n in names if n not in columns]
    if case_column is None or missing:
        raise ConfigError(
            f"data.annotated: {path} needs a 'case' column and one 0/1 column per structure; "
            + (
                f"it lacks the column(s) {', '.join(repr(m) for m in missing)}"
                if missing
                else "it has no case column"
            )
            + f" (columns: {', '.join(columns) or 'none'})"
        )
    table: dict[str, set[str]] = {}
    for line, row in enumerate(rows, start=2):
        for name in names:
            if row[name].strip() not in ("0", "1"):
                raise ConfigError(f"data.annotated: {path} line {line}, column {name!r}: expected 0 or 1, got {row[name]!r}")  # fmt: skip
        table[row[case_column].strip()] = {n for n in names if row[n].strip() == "1"}
    return table


def annotated_vector(annotated: set[str], names: Sequence[str], class_table: np.ndarray | None) -> np.ndarray:
    """The 0/1 vector over output classes (background first, always 1) of one case.

    With a merged class table (the sagittal view's one class per left / right pair), an output class
    is annotated when every structure merged into it is.

    Example:
        >>> annotated_vector({"a", "c"}, ["a", "b", "c"], None).tolist()
        [1.0, 1.0, 0.0, 1.0]
    """
    per_structure = np.array([1.0] + [1.0 if n in annotated else 0.0 for n in names], dtype=np.float32)
    if class_table is None:
        return per_structure
    merged = np.ones(int(class_table.max()) + 1, dtype=np.float32)
    np.minimum.at(merged, class_table, per_structure)
    return merged


def case_annotations(
    setting: Path | str | None, names: Sequence[str], case_names: Sequence[str]
) -> dict[str, set[str]] | None:
    """Each case's annotated structures from ``data.annotated`` (``None``: every structure, or the
    ``nonempty`` rule, which is read from the label maps themselves)."""
    if setting is None or setting == NONEMPTY:
        return None
    table = read_annotation_table(Path(setting), names)
    unknown = [c for c in case_names if c not in table]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DataError(
            f"data.annotated: {setting} has no row for the cases {shown}; add them (1 = annotated)"
        )
    return {c: table[c] for c in case_names}


def attach_annotations(items: list[dict], config: Config) -> list[dict]:
    """Training items with their ``annotated`` vector from the ``data.annotated`` CSV (unchanged
    without one; the ``nonempty`` rule is applied by :class:`AnnotatedFromLabeld`)."""
    path = config.data.annotation_table
    if path is None:
        return items
    names = config.data.structure_names
    table = case_annotations(path, names, [item["name"] for item in items])
    assert table is not None
    return [
        {**item, ANNOTATED_KEY: annotated_vector(table[item["name"]], names, config.class_table)}
        for item in items
    ]


class AnnotatedFromLabeld(MapTransform):
    """The ``nonempty`` rule: a class is annotated in a case where its label map holds it.

    Runs on the whole (cached) label map in output classes, before cropping, so a patch that misses
    a structure of its case still counts it as annotated: the patch shows where it is not.
    """

    def __init__(self, label_key: str, num_classes: int) -> None:
        super().__init__([label_key])
        self.label_key, self.num_classes = label_key, num_classes

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        label = torch.as_tensor(d[self.label_key]).long().reshape(-1).clamp(0, self.num_classes - 1)
        present = (torch.bincount(label, minlength=self.num_classes) > 0).numpy().astype(np.float32)
        present[0] = 1.0
        d[ANNOTATED_KEY] = present
        return d
