"""Dataset discovery (folder pair, CSV, MSD dataset.json) and the train/validation split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scseg.config.data_section import DataConfig, SplitConfig
from scseg.data.cases import case_name, discover_cases, split_cases
from scseg.errors import DataError


def _data(root: Path, **kw) -> DataConfig:
    return DataConfig(root=root, label_names=["a", "b", "c"], **kw)


def test_case_names_drop_extensions_and_channel_suffix() -> None:
    assert case_name("/x/hippocampus_001.nii.gz") == "hippocampus_001"
    assert case_name("la_003_0000.nii.gz") == "la_003"
    assert case_name("/dicom/series_7") == "series_7"


def test_folder_pair_csv_and_msd_json_describe_the_same_cases(phantom_root: Path) -> None:
    folder = discover_cases(_data(phantom_root, dataset="."))
    from_csv = discover_cases(_data(phantom_root, dataset="dataset.csv"))
    entries = [
        {"image": f"./imagesTr/{c.name}.nii.gz", "label": f"./labelsTr/{c.name}.nii.gz"} for c in folder
    ]
    (phantom_root / "msd.json").write_text(json.dumps({"training": entries}))
    from_json = discover_cases(_data(phantom_root, dataset="msd.json"))
    assert [c.name for c in folder] == [c.name for c in from_csv] == [c.name for c in from_json]
    assert len(folder) == 10
    assert from_csv[0].image.is_dir(), "the CSV points the first case at its DICOM series folder"
    assert from_json[3].image == folder[3].image


def test_missing_image_file_is_named(phantom_root: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("image,label\nimagesTr/absent.nii.gz,labelsTr/phantom_001.nii.gz\n")
    shutil.copytree(phantom_root / "labelsTr", tmp_path / "labelsTr")
    with pytest.raises(DataError, match=r"image file .*absent.nii.gz does not exist"):
        discover_cases(_data(tmp_path, dataset="bad.csv"))


def test_empty_data_set_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    with pytest.raises(DataError, match="empty"):
        discover_cases(_data(tmp_path))


def test_unknown_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither a dataset.json"):
        discover_cases(_data(tmp_path, dataset="cases.txt"))


def test_split_is_seeded_disjoint_and_explicit_split_is_honoured(phantom_root: Path) -> None:
    data = _data(phantom_root, dataset="dataset.csv", val_fraction=0.3)
    cases = discover_cases(data)
    train, val = split_cases(cases, data, seed=3)
    assert len(val) == 3 and len(train) == 7
    assert not {c.name for c in train} & {c.name for c in val}
    assert split_cases(cases, data, seed=3) == (train, val)
    assert split_cases(cases, data, seed=4) != (train, val)
    explicit = _data(
        phantom_root, dataset="dataset.csv", split=SplitConfig(train=["phantom_001"], val=["phantom_002"])
    )
    train, val = split_cases(cases, explicit, seed=0)
    assert [c.name for c in train] == ["phantom_001"] and [c.name for c in val] == ["phantom_002"]
    wrong = _data(phantom_root, dataset="dataset.csv", split=SplitConfig(train=["nope"], val=["phantom_002"]))
    with pytest.raises(DataError, match="nope"):
        split_cases(cases, wrong, seed=0)
