"""The cells of ``scseg ablate``: their configs, and which swept values are cells of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from scseg.errors import ConfigError
from scseg.evaluation.study_cells import Cell, cell_config, study_cells, swept_values


def test_cell_configs_switch_architecture_and_dimensionality() -> None:
    raw = {
        "model": {"name": "unet", "base_features": 8, "se": "cse"},
        "mode": {"type": "3d", "patch_size": [32, 48, 32]},
    }
    two_d = cell_config(raw, Cell(2, "densenet", "scse"), 5)
    assert two_d["model"] == {"name": "densenet", "se": "scse"}
    assert two_d["mode"]["type"] == "2d" and two_d["mode"]["patch_size"] == [32, 32]  # coronal: the 48 goes
    assert two_d["train"]["time_limit_minutes"] == 5 and raw["model"]["se"] == "cse"  # the input is untouched


def test_a_swept_value_a_cell_has_anyway_is_the_plain_cell(tiny_config: dict, tmp_path: Path) -> None:
    """``--vary model.se_reduction=2,4`` where 2 is U-Net's default: the r=2 cell is the plain
    ``cse`` cell (trained once, shared with the main table), tabled as the default; r=4 is its own."""
    cells = study_cells(
        tiny_config, tmp_path, [3], ["unet"], ["none", "cse"], [0], "model.se_reduction=2,4,2", None, 1
    )
    assert [c.name for c in cells] == ["3d_unet_none_s0", "3d_unet_cse_s0", "3d_unet_cse_se_reduction-4_s0"]
    plain, swept = cells[1], cells[2]
    assert plain.variant is None and plain.default_variant == "model.se_reduction=2"
    assert swept.variant == "model.se_reduction=4" and swept.default_variant is None
    # "anyway" is the cell's own config, not only the constructor's default: set r=4 in the config
    # and r=4 becomes the plain cell, r=2 the variant
    tiny_config["model"]["se_reduction"] = 4
    cells = study_cells(
        tiny_config, tmp_path, [3], ["unet"], ["cse"], None, "model.se_reduction=2,4", None, 1
    )
    assert [(c.name, c.default_variant) for c in cells] == [
        ("3d_unet_cse_se_reduction-2", None),
        ("3d_unet_cse", "model.se_reduction=4"),
    ]
    # a training option too: the budget is the cells' own 1 epoch
    cells = study_cells(tiny_config, tmp_path, [3], ["unet"], ["cse"], None, "train.max_epochs=1,2", None, 1)
    assert [c.name for c in cells] == ["3d_unet_cse", "3d_unet_cse_max_epochs-2"]


def test_an_architecture_prefixed_value_sweeps_that_architecture_only(
    tiny_config: dict, tmp_path: Path
) -> None:
    """``--vary train.max_epochs=unet:2,resunet:3``: each architecture's SE cells take their own value
    (equal wall-clock budgets in one table), one for an architecture outside the study is unused, a
    plain value goes to every architecture, and a colon that does not follow an architecture's name is
    part of the value."""
    cells = study_cells(
        tiny_config, tmp_path, [3], ["unet", "resunet"], ["none", "cse"], [0],
        "train.max_epochs=unet:2,resunet:3", None, 1,
    )  # fmt: skip
    assert [(c.name, c.variant) for c in cells] == [
        ("3d_unet_none_s0", None),
        ("3d_unet_cse_max_epochs-2_s0", "train.max_epochs=2"),
        ("3d_resunet_none_s0", None),
        ("3d_resunet_cse_max_epochs-3_s0", "train.max_epochs=3"),
    ]
    swept = swept_values("model.se_reduction=unet:4,8,sdnet:16,x:y", ["unet", "resunet"])
    assert swept == {
        "unet": ["model.se_reduction=4", "model.se_reduction=8", "model.se_reduction=x:y"],
        "resunet": ["model.se_reduction=8", "model.se_reduction=x:y"],  # sdnet's 16: not in this study
    }
    assert swept_values(None, ["unet"]) == {"unet": [None]}


def test_an_architecture_without_a_swept_value_is_named(tiny_config: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no value for resunet; .*resunet:VALUE"):
        study_cells(
            tiny_config, tmp_path, [3], ["unet", "resunet"], ["cse"], None, "train.max_epochs=unet:2", None, 1
        )
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        swept_values("train.max_epochs", ["unet"])
