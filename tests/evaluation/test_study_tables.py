"""The study tables' ``all (N)`` rows: architectures' paired changes averaged per subject and seed."""

from __future__ import annotations

from scseg.evaluation.study_tables import study_markdown

VOLUMES = {"small": 1.0, "medium": 2.0, "large": 3.0}
BASE = {"small": 0.5, "medium": 0.6, "large": 0.7}


def _cell(arch: str, se: str, seed: int, shift: float, variant: str = "") -> dict:
    """A finished cell whose every structure's Dice is ``none``'s plus ``shift``, on two subjects."""
    dice = {s: d + shift for s, d in BASE.items()}
    return {
        "dims": 2,
        "arch": arch,
        "se": se,
        "variant": variant,
        "seed": seed,
        "case_structure_dice": {"subject_a": dict(dice), "subject_b": dict(dice)},
        "structure_volume_ml": VOLUMES,
        "train_minutes": 1.0,
    }


def _row(table: str, start: str) -> str:
    found = [line for line in table.split("\n") if line.startswith(start)]
    assert len(found) == 1, (start, table)
    return found[0]


def test_architectures_are_averaged_per_subject_and_seed_before_the_interval() -> None:
    # cSE: +0.02 on one architecture, -0.01 on the other, for every subject, seed and structure.
    # Averaged per (subject, seed) that is +0.005 on each of the 4 pairs, an interval of zero width;
    # pooling the 8 architecture x subject x seed changes as independent would give +0.005 ± 0.014.
    rows = [_cell(arch, "none", seed, 0.0) for arch in ("unet", "sdnet") for seed in (0, 1)]
    rows += [_cell("unet", "cse", seed, 0.02) for seed in (0, 1)]
    rows += [_cell("sdnet", "cse", seed, -0.01) for seed in (0, 1)]
    rows += [_cell("unet", "sse", 0, 0.01)]  # one architecture only: no `all` row for sSE
    table = study_markdown(rows, "# Study")
    assert _row(table, "| unet | cse | - | 2 | 4 |").endswith("| +0.020 ± 0.000 | 1.0 |")
    assert _row(table, "| sdnet | cse | - | 2 | 4 |").endswith("| -0.010 ± 0.000 | 1.0 |")
    assert (
        _row(table, "| all (2) | cse | - | 2 | 4 | - |")
        == "| all (2) | cse | - | 2 | 4 | - | +0.005 ± 0.000 | - |"
    )
    assert "| all (2) | cse | - | +0.005 ± 0.000 | +0.005 ± 0.000 | +0.005 ± 0.000 |" in table
    assert "| all (2) | sse |" not in table


def test_a_swept_option_pools_by_its_key_only_with_one_value_per_architecture() -> None:
    rows = [_cell(arch, "none", 0, 0.0) for arch in ("unet", "resunet")]
    rows += [_cell("unet", "scse", 0, -0.01, "train.max_epochs=816")]
    rows += [_cell("resunet", "scse", 0, -0.03, "train.max_epochs=840")]
    rows += [_cell("unet", "cse", 0, 0.01, f"model.se_reduction={r}") for r in (4, 8)]
    rows += [_cell("resunet", "cse", 0, 0.01, "model.se_reduction=4")]
    table = study_markdown(rows, "# Study")
    label = "| all (2) | scse | train.max_epochs (each architecture's) |"
    assert _row(table, label + " 1 | 2 |").endswith("| -0.020 ± 0.000 | - |")
    # U-Net has two reduction ratios: there is no one change per architecture to average
    assert "| all (2) | cse |" not in table
    # a single architecture's study has no `all` rows
    alone = study_markdown([r for r in rows if r["arch"] == "unet"], "# Study")
    assert "| all (" not in alone


def test_the_all_row_keeps_only_the_pairs_every_architecture_has() -> None:
    # sSE: U-Net has seeds 0 and 1 (+0.02), SD-Net seed 0 only (-0.01). Seed 1 has no SD-Net change,
    # so the row is seed 0's two subjects at +0.005, not those averaged with U-Net's seed 1 alone.
    rows = [_cell(arch, "none", seed, 0.0) for arch in ("unet", "sdnet") for seed in (0, 1)]
    rows += [_cell("unet", "sse", seed, 0.02) for seed in (0, 1)]
    rows += [_cell("sdnet", "sse", 0, -0.01)]
    table = study_markdown(rows, "# Study")
    assert (
        _row(table, "| all (2) | sse | - | 1 |") == "| all (2) | sse | - | 1 | 2 | - | +0.005 ± 0.000 | - |"
    )
    assert "| all (2) | sse | - | +0.005 ± 0.000 | +0.005 ± 0.000 | +0.005 ± 0.000 |" in table


def test_no_all_row_when_the_architectures_share_no_pair() -> None:
    # sSE: U-Net finished seed 1 only, SD-Net seed 0 only: no subject x seed pair has both changes.
    rows = [_cell(arch, "none", seed, 0.0) for arch in ("unet", "sdnet") for seed in (0, 1)]
    rows += [_cell("unet", "sse", 1, 0.02), _cell("sdnet", "sse", 0, -0.01)]
    table = study_markdown(rows, "# Study")
    assert "| all (2) | sse |" not in table
    assert "| unet | sse |" in table and "| sdnet | sse |" in table
