"""The model spec: what a trained model is, without its training data (label colours and codes)."""

from __future__ import annotations

from pathlib import Path

import torch

from scseg.artefact.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from scseg.artefact.spec import LabelSpec, ModelSpec
from tests.conftest import data_section_config


def test_colours_and_codes_reach_the_model_artefact_once(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text(
        "0 Unknown 0 0 0 0\n17 Left-Hippocampus 4 5 6 0\n1028 ctx-lh-superiorfrontal 7 8 9 0\n"
    )
    spec = ModelSpec.from_config(data_section_config({"label_set": "labels.txt"}, tmp_path))
    assert spec.labels.colours == [(4, 5, 6), (7, 8, 9)]
    hippocampus, cortex = spec.labels.codes
    assert (hippocampus.type.value, hippocampus.modifier.meaning) == ("5366008", "Left")
    assert cortex.private
    # stored as plain values (model.yaml, weights-only checkpoints) and read back the same
    save_checkpoint(tmp_path / "c.pt", Checkpoint({"w": torch.ones(1)}, 1, spec=spec.to_dict()))
    back = ModelSpec.model_validate(load_checkpoint(tmp_path / "c.pt").spec)
    assert back.labels == spec.labels
    # an artefact written before codes existed maps its names when asked
    old = LabelSpec(names=["Right-Amygdala"], values=[54])
    assert old.codes is None and old.segment_codes()[0].modifier.meaning == "Right"
