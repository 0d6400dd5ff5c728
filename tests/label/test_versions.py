"""Model versions: numbering, the history, switching, roll back, and a new base starting over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scseg.errors import ConfigError
from scseg.label.versions import HISTORY, ModelVersions


def _trained(versions: ModelVersions, accepted: bool) -> str:
    version = versions.next_version()
    (versions.root / version).mkdir(parents=True)
    versions.record({"version": version, "accepted": accepted, "dice_after": 0.5}, make_current=accepted)
    return version


def test_versions_add_up_switch_only_when_accepted_and_roll_back(tmp_path: Path) -> None:
    base = tmp_path / "model"
    base.mkdir()
    versions = ModelVersions(tmp_path / "versions" / "m", base)
    assert versions.current == "v0" and versions.current_path() == base.resolve()
    assert _trained(versions, accepted=True) == "v1"
    assert _trained(versions, accepted=False) == "v2"
    assert versions.current == "v1", "a rejected version is kept on disk but not served"
    (versions.root / "v3").mkdir()  # a training stopped after its folder appeared keeps its number
    assert versions.next_version() == "v4"
    reloaded = ModelVersions(versions.root, base)
    assert reloaded.current == "v1" and reloaded.current_path() == versions.root / "v1"
    assert reloaded.summary()["best_metric"] == 0.5
    assert reloaded.use("v0") == base.resolve()
    assert json.loads((versions.root / HISTORY).read_text())["current"] == "v0"
    with pytest.raises(ConfigError, match="v9.*does not exist.*v0, v1, v2"):
        reloaded.use("v9")
    with pytest.raises(ConfigError, match="v3"):
        reloaded.path_of("v3")  # a folder without a history entry is no version


def test_a_history_for_another_base_model_starts_over(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    root = tmp_path / "versions" / "m"
    _trained(ModelVersions(root, first), accepted=True)
    other = ModelVersions(root, second)
    assert other.current == "v0" and other.current_path() == second.resolve()
    assert other.next_version() == "v2", "the old version folders keep their numbers"


def test_an_unreadable_history_is_named(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / HISTORY).write_text("{not json")
    with pytest.raises(ConfigError, match="versions.json"):
        ModelVersions(root, tmp_path)
