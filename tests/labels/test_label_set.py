"""Label sets from FreeSurfer-style lookup tables, and configs that use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from scseg.errors import ConfigError
from scseg.labels.label_set import parse_label_set, read_label_set
from scseg.paths import REPO_ROOT
from tests.conftest import data_section_config

WHOLE_BRAIN = REPO_ROOT / "configs" / "whole_brain_labels.txt"


def test_the_whole_brain_set_has_98_structures_in_freesurfer_ids() -> None:
    labels = read_label_set(WHOLE_BRAIN)
    assert len(labels.values) == 98
    assert sum(v < 1000 for v in labels.values) == 36 and sum(v >= 1000 for v in labels.values) == 62
    named = dict(zip(labels.values, labels.names, strict=True))
    assert named[17] == "Left-Hippocampus" and named[53] == "Right-Hippocampus"
    assert named[1035] == "ctx-lh-insula" and named[2002] == "ctx-rh-caudalanteriorcingulate"
    assert labels.colours[labels.values.index(17)] == (220, 216, 20)


@pytest.mark.parametrize(
    "text, message",
    [
        ("17 Left-Hippocampus 220 216\n", "line 1"),
        ("17 Left-Hippocampus 220 216 20 0\n17 Again 1 2 3 0\n", "listed twice"),
        ("x Left 1 2 3 0\n", "expected 'id name R G B"),
        ("17 Left 1 2 300 0\n", "colours 0-255"),
        ("# only a comment\n0 Unknown 0 0 0 0\n", "no structure"),
    ],
)
def test_malformed_tables_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_label_set(text, "t.txt")


def test_a_config_takes_names_and_ids_from_a_label_set_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text(
        "0 Unknown 0 0 0 0\n53 Right-Hippocampus 1 2 3 0\n17 Left-Hippocampus 4 5 6 0\n"
    )
    config = data_section_config({"label_set": "labels.txt"}, tmp_path)
    assert config.data.structure_names == ["Right-Hippocampus", "Left-Hippocampus"]
    assert config.data.label_values == [53, 17]
    assert config.data.lr_classes == [(2, 1)], "(left class, right class)"
    with pytest.raises(ConfigError, match="label_values differs from the label set"):
        data_section_config({"label_set": "labels.txt", "label_values": [17, 53]}, tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        data_section_config({"label_set": "missing.txt"}, tmp_path)
    stored = data_section_config(
        {"label_set": "gone.txt", "label_names": ["a", "b"], "label_values": [3, 4]}, tmp_path
    )
    assert stored.data.label_values == [3, 4], "a stored run config loads where its table is absent"
