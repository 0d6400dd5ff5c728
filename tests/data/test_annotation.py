"""Partial labels: which structures each case annotated, read from a CSV or by rule, carried through
the training transforms (mirrors swap it with the labels) and used by ``scseg evaluate``."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scseg.cli import app
from scseg.config import config_from_dict
from scseg.data.annotation import (
    ANNOTATED_KEY,
    AnnotatedFromLabeld,
    annotated_vector,
    attach_annotations,
    read_annotation_table,
)
from scseg.data.lr_flip import RandFlipLRd
from scseg.errors import ConfigError


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_table_names_each_cases_annotated_structures(tmp_path: Path) -> None:
    path = _csv(tmp_path / "contoured.csv", "case,split,Brainstem,Larynx\na,train,1,0\nb,val,1,1\n")
    assert read_annotation_table(path, ["Brainstem", "Larynx"]) == {
        "a": {"Brainstem"},
        "b": {"Brainstem", "Larynx"},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("case,Brainstem\na,1\n", "it lacks the column.s. 'Larynx'"),
        ("id,Brainstem,Larynx\na,1,1\n", "it has no case column"),
        ("case,Brainstem,Larynx\na,1,yes\n", "line 2, column 'Larynx': expected 0 or 1, got 'yes'"),
    ],
)
def test_a_bad_table_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_annotation_table(_csv(tmp_path / "t.csv", text), ["Brainstem", "Larynx"])
    with pytest.raises(ConfigError, match="cannot read"):
        read_annotation_table(tmp_path / "absent.csv", ["Brainstem"])


def test_a_merged_pair_is_annotated_when_both_sides_are() -> None:
    names = ["Parotid_L", "Mandible", "Parotid_R"]
    table = np.array([0, 1, 2, 1])  # background, the parotid pair as one class, mandible
    assert annotated_vector({"Parotid_L", "Mandible"}, names, table).tolist() == [1.0, 0.0, 1.0]
    assert annotated_vector(set(names), names, table).tolist() == [1.0, 1.0, 1.0]


def test_training_items_carry_their_vector_and_a_mirror_swaps_it(tiny_config: dict, tmp_path: Path) -> None:
    names = [f"phantom_{i:03d}" for i in range(10)]
    rows = "".join(f"{n},1,{int(i % 2 == 0)},1\n" for i, n in enumerate(names))
    _csv(tmp_path / "annotated.csv", "case,ventricle,lesion,rim\n" + rows)
    tiny_config["data"].update({"annotated": str(tmp_path / "annotated.csv"), "label_names": ["Left-X", "lesion", "Right-X"]})  # fmt: skip
    tiny_config["preprocessing"]["orientation"] = "RAS"
    config = config_from_dict(tiny_config)
    with pytest.raises(ConfigError, match="lacks the column.s. 'Left-X', 'Right-X'"):
        attach_annotations([{"name": "phantom_000"}], config)
    _csv(tmp_path / "annotated.csv", "case,Left-X,lesion,Right-X\n" + rows.replace(",1\n", ",0\n"))
    items = attach_annotations([{"name": "phantom_001"}, {"name": "phantom_002"}], config)
    assert [item[ANNOTATED_KEY].tolist() for item in items] == [[1, 1, 0, 0], [1, 1, 1, 0]]
    flip = RandFlipLRd(["label"], 0, num_classes=4, pairs=config.data.lr_classes, prob=1.0)
    label = torch.zeros(1, 4, 2)
    mirrored = flip({"label": label, ANNOTATED_KEY: items[1][ANNOTATED_KEY]})
    assert mirrored[ANNOTATED_KEY].tolist() == [1, 0, 1, 1], (
        "Left-X annotated before the mirror, Right-X after"
    )


def test_the_nonempty_rule_reads_the_whole_label_map() -> None:
    label = torch.zeros(1, 4, 4, 4)
    label[0, 0, 0, 0] = 2
    out = AnnotatedFromLabeld("label", num_classes=4)({"label": label})
    assert out[ANNOTATED_KEY].tolist() == [1, 0, 1, 0]


def test_evaluate_scores_a_structure_only_where_annotated(tmp_path: Path) -> None:
    """The reference of case b has no larynx because it was not contoured: scored as a false positive
    without the table, and left out (1 case instead of 2) with it."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for folder in (pred, ref):
        folder.mkdir()
    label = np.zeros((8, 8, 8), dtype=np.uint8)
    label[1:4, 1:4, 1:4], label[5:7, 5:7, 5:7] = 1, 2
    for case in ("a", "b"):
        nib.save(nib.Nifti1Image(label, np.eye(4)), pred / f"{case}.nii.gz")
        reference = label.copy() if case == "a" else np.where(label == 2, 0, label).astype(np.uint8)
        nib.save(nib.Nifti1Image(reference, np.eye(4)), ref / f"{case}.nii.gz")
    names = _csv(tmp_path / "names.yaml", "1: Brainstem\n2: Larynx\n")
    table = _csv(tmp_path / "contoured.csv", "case,Brainstem,Larynx\na,1,1\nb,1,0\n")
    runner = CliRunner()
    plain = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--labels", str(names), "--out", str(tmp_path / "plain")])  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert "| Larynx | 2 |" in (tmp_path / "plain" / "summary.md").read_text()
    partial = runner.invoke(
        app,
        ["evaluate", "--pred", str(pred), "--ref", str(ref), "--labels", str(names), "--out", str(tmp_path / "partial"),
         "--annotated", str(table)],
        terminal_width=200,
    )  # fmt: skip
    assert partial.exit_code == 0, partial.output
    summary = (tmp_path / "partial" / "summary.md").read_text()
    assert "| Larynx | 1 |" in summary and "| Brainstem | 2 |" in summary and "where annotated" in summary
    assert "1.0000" in partial.output and "cases" in partial.output
