"""The shipped configs on the real data: they load, read NIfTI and DICOM, and train one short epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scseg.config import load_config
from scseg.data.cases import discover_cases
from scseg.data.transforms import validation_transforms
from scseg.engine.trainer import train
from tests.conftest import CONFIGS

pytestmark = pytest.mark.data


def test_ct_organ_names_come_from_the_totalsegmentator_class_map(shared_data: Path) -> None:
    config = load_config(CONFIGS / "ct_organs_3d.yaml")
    class_map = json.loads((shared_data / "totalsegmentator_examples/class_map_total.json").read_text())
    assert [class_map[str(v)] for v in config.data.label_values] == config.data.structure_names


def test_ct_config_reads_the_dicom_series_onto_its_label_grid(shared_data: Path) -> None:
    config = load_config(CONFIGS / "ct_organs_3d.yaml")
    cases = {c.name: c for c in discover_cases(config.data)}
    assert cases["ct_dicom_series"].image.is_dir()
    item = validation_transforms(config)(cases["ct_dicom_series"].as_dict())
    image, label = item["image"], item["label"]
    assert image.shape == label.shape and image.shape[1:3] == (167, 167)  # 512 x 0.977 mm -> 3 mm
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0  # CT window
    assert set(label.unique().tolist()) == set(range(7)), "all six organs remapped to 1..6"


def test_brain_config_remaps_45_freesurfer_labels(shared_data: Path) -> None:
    config = load_config(CONFIGS / "brain_aseg_2d.yaml")
    assert config.num_classes == 46
    case = discover_cases(config.data)[0]
    label = validation_transforms(config)(case.as_dict())["label"]
    assert sorted(label.unique().int().tolist()) == list(range(46))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("hippocampus_3d.yaml", ["data.max_cases=8", "model.base_features=4"]),
        ("hippocampus_2d.yaml", ["data.max_cases=8", "model.features=8"]),
        ("ct_organs_3d.yaml", ["model.base_features=4", "mode.samples_per_volume=1"]),
        (
            "brain_aseg_2d.yaml",
            [
                "model.features=8",
                "mode.samples_per_volume=2",
                "mode.patch_size=[64, 64]",
                "inference.sw_batch_size=32",
            ],
        ),
    ],
)
def test_shipped_config_trains_one_epoch(
    name: str, overrides: list[str], shared_data: Path, tmp_path: Path
) -> None:
    config = load_config(CONFIGS / name, [*overrides, "train.max_epochs=1"])
    result = train(config, tmp_path / "run")
    assert result.epochs == 1
    assert set(result.final_dice) == set(config.data.structure_names)
    assert (tmp_path / "run/checkpoints/best.pt").is_file() or all(v != v for v in result.final_dice.values())


def test_whole_brain_config_has_98_structures_checked_against_the_data(shared_data: Path) -> None:
    from scseg.data.checks import check_label_ids_present
    from scseg.errors import DataError

    config = load_config(CONFIGS / "whole_brain_2d.yaml")
    assert config.num_classes == 99 and len(config.data.lr_classes) == 45
    assert [(v.axis, v.weight) for v in config.mode.views] == [
        ("coronal", 0.4),
        ("axial", 0.4),
        ("sagittal", 0.2),
    ]
    assert config.view_config("sagittal").num_classes == 1 + 98 - 45, "one class per left / right pair"
    cases = discover_cases(config.data)
    assert len(cases) == 14
    labels = [c.label for c in cases]
    check_label_ids_present(
        labels, config.data.label_values, config.data.structure_names, "whole_brain_labels.txt"
    )
    with pytest.raises(DataError, match="9999 Not-A-Structure"):
        check_label_ids_present(labels[:2], [17, 9999], ["Left-Hippocampus", "Not-A-Structure"], "a table")


def test_a_left_right_flip_of_a_real_brain_keeps_each_label_on_its_side(shared_data: Path) -> None:
    """On a real labelled brain: after the flip, Left-Hippocampus (17) is still the hippocampus on
    the left, while a plain flip would put the left label on the right hippocampus."""
    import torch
    from monai.transforms import Flip

    from scseg.data.lr_flip import RandFlipLRd

    config = load_config(CONFIGS / "whole_brain_2d.yaml")
    case = discover_cases(config.data)[0]
    label = validation_transforms(config)(case.as_dict())["label"]  # RAS, classes 1..98
    left, right = (config.data.label_values.index(v) + 1 for v in (17, 53))
    x = torch.arange(label.shape[1], dtype=torch.float32)[:, None, None]

    def centre(volume: torch.Tensor, cls: int) -> float:
        mask = (volume[0] == cls).float()
        return float((mask * x).sum() / mask.sum())

    assert centre(label, left) < centre(label, right), "RAS: left has the smaller x"
    flip = RandFlipLRd(["label"], config.lr_axis, config.num_classes, config.data.lr_classes, prob=1.0)
    flipped = flip({"label": label.clone()})["label"]
    assert centre(flipped, left) < centre(flipped, right)
    plain = Flip(spatial_axis=0)(label.clone())
    assert centre(plain, left) > centre(plain, right), "a plain flip teaches the wrong side"
