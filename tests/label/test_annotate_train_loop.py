"""The annotator's loop, driven by monailabel's own client against the real server on 127.0.0.1:
next sample (uncertainty) -> infer -> save a corrected label, for 10 hippocampus cases -> train ->
poll -> the new version serves -> better Dice on images nobody labelled. Then the requests that
must fail (4xx, nothing in the datastore lost), a stopped training, and a roll back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nibabel as nib
import numpy as np
import pytest
import yaml

from tests.conftest import CONFIGS
from tests.label.live_server import Server, label_server
from tests.prediction_helpers import dice

pytestmark = [pytest.mark.slow, pytest.mark.data]
pytest.importorskip("monailabel", reason="the label extra is not installed (scripts/setup.sh installs it)")

LABELLED = 10  # images the annotator labels
STUDIES = 12  # so that 2 stay unlabelled: the held-aside cases the test scores on
BOUND_S = 300  # every wait is bounded


def _hippocampus_names(shared_data: Path) -> list[str]:
    images = shared_data / "msd_hippocampus_mri/imagesTr"
    return sorted(p.name.removesuffix(".nii.gz") for p in images.iterdir())


@pytest.fixture(scope="module")
def weak_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3D scSE U-Net trained for only 3 epochs (6 steps) on 16 cases: mean Dice ~0.15, so what
    the annotators' labels teach it is measurable."""
    from scseg.config import config_from_dict
    from scseg.engine.trainer import train

    names = _hippocampus_names(shared_data)
    raw = yaml.safe_load((CONFIGS / "hippocampus_3d.yaml").read_text())
    raw["data"].update(
        root=str(shared_data / "msd_hippocampus_mri"), split={"train": names[40:56], "val": names[56:58]}
    )
    raw["model"]["base_features"] = 8
    raw["train"].update(max_epochs=3, val_interval=3)
    run = tmp_path_factory.mktemp("runs") / "weak_hippo"
    train(config_from_dict(raw), run)
    return run


@pytest.fixture(scope="module")
def world(shared_data: Path, weak_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("loop")
    studies = base / "studies"
    studies.mkdir()
    for name in _hippocampus_names(shared_data)[:STUDIES]:
        # copies: the server refuses links that point out of its studies folder
        shutil.copyfile(
            shared_data / f"msd_hippocampus_mri/imagesTr/{name}.nii.gz", studies / f"{name}.nii.gz"
        )
    return {"base": base, "studies": studies, "versions": base / "versions", "model": weak_model}


@pytest.fixture(scope="module")
def server(world: dict[str, Path]) -> Iterator[Server]:
    extra = ("--versions", str(world["versions"]))
    with label_server([f"hippo={world['model']}"], world["studies"], world["base"], extra) as running:
        yield running


def _reference(shared_data: Path, image_id: str) -> Path:
    return shared_data / f"msd_hippocampus_mri/labelsTr/{image_id}.nii.gz"


def _mean_dice(label_file: str, reference: Path) -> float:
    predicted = np.asanyarray(nib.load(label_file).dataobj)
    truth = np.asanyarray(nib.load(reference).dataobj)
    return (dice(predicted, truth, 1) + dice(predicted, truth, 2)) / 2


def _wait(condition: Callable[[], Any], what: str, server: Server) -> Any:
    deadline = time.time() + BOUND_S
    while time.time() < deadline:
        assert server.process.poll() is None, f"the server died while waiting for {what}"
        value = condition()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"{what} did not happen within {BOUND_S} s:\n{server.log.read_text()[-3000:]}")


def _labels_digest(studies: Path) -> dict[str, str]:
    folder = studies / "labels"
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.nii.gz"))
    }


def test_next_sample_infer_save_train_serves_a_better_version(
    server: Server, world: dict[str, Path], shared_data: Path, tmp_path: Path
) -> None:
    from monailabel.client import MONAILabelClient

    client = MONAILabelClient(server.url, tmpdir=str(tmp_path))
    info = client.info()
    assert set(info["strategies"]) == {"first", "random", "uncertainty"}
    assert info["trainers"]["hippo"]["config"]["tag"] == "final"
    assert info["train_stats"]["hippo"]["current"] == "v0"

    # the uncertainty scoring starts with the server; wait until every image has its score
    scoring = _wait(
        lambda: (r := httpx.get(f"{server.url}/scoring/").json())["status"] == "DONE" and r,
        "the scoring",
        server,
    )
    assert scoring["scored"] == STUDIES and scoring["version"] == "v0", json.dumps(scoring)

    picked, scores = [], []
    for _ in range(LABELLED):
        sample = client.next_sample("uncertainty", {})
        image_id = sample["id"]
        assert image_id not in picked and sample["strategy"] == "uncertainty" and sample["path"] == ""
        label_file, params = client.infer("hippo", image_id, {})
        assert nib.load(label_file).shape == nib.load(world["studies"] / f"{image_id}.nii.gz").shape
        assert params["label_names"] == {"anterior": 1, "posterior": 2}
        # the annotator's correction: the reference label of that case
        saved = client.save_label(image_id, str(_reference(shared_data, image_id)), tag="final")
        assert saved["label"] == image_id and saved["model"] == "hippo"
        picked.append(image_id)
        scores.append(sample["score"])
    assert scores == sorted(scores, reverse=True), "uncertainty sampling picks the least sure image first"
    store = client.datastore()["objects"]
    held_out = sorted(i for i, o in store.items() if "final" not in o["labels"])
    assert len(held_out) == STUDIES - LABELLED and not set(held_out) & set(picked)
    stored = json.loads((world["studies"] / "datastore_v2.json").read_text())["objects"][picked[0]]
    assert stored["labels"]["final"]["info"]["label_names"] == {"anterior": 1, "posterior": 2}

    before = np.mean(
        [_mean_dice(client.infer("hippo", i, {})[0], _reference(shared_data, i)) for i in held_out]
    )

    # requests that must fail, and leave the datastore as it was
    kept = _labels_digest(world["studies"])
    wrong_shape = tmp_path / "wrong_shape.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), wrong_shape)
    with wrong_shape.open("rb") as f:
        response = httpx.put(
            f"{server.url}/datastore/label", params={"image": held_out[0]}, files={"label": f}
        )
    assert response.status_code == 422 and "shape" in response.json()["detail"]
    with _reference(shared_data, held_out[0]).open("rb") as f:
        response = httpx.put(
            f"{server.url}/datastore/label", params={"image": "no_such_image"}, files={"label": f}
        )
    assert response.status_code == 404
    response = httpx.delete(f"{server.url}/train/")
    assert response.status_code == 409 and "no training is running" in response.json()["detail"]
    response = httpx.post(f"{server.url}/train/hippo", json={"epochs": "many"})
    assert response.status_code == 422 and "epochs" in response.json()["detail"]
    assert _labels_digest(world["studies"]) == kept

    started = time.time()
    task = client.train_start("hippo", {"epochs": 30, "lr": 0.003, "time_minutes": 5})
    assert task["status"] == "RUNNING" and task["version"] == "v1"
    again = httpx.post(f"{server.url}/train/hippo", json={})
    assert again.status_code == 409 and "already running" in again.json()["detail"]
    assert client.train_status(check_if_running=True)
    status = _wait(lambda: (s := client.train_status())["status"] != "RUNNING" and s, "the training", server)
    minutes = (time.time() - started) / 60
    assert status["status"] == "DONE", status
    result = status["result"]
    assert result["accepted"], result
    assert len(result["val_images"]) == 2 and len(result["train_images"]) == LABELLED - 2
    assert not set(result["val_images"]) & set(held_out)

    info = client.info()
    assert info["train_stats"]["hippo"]["current"] == "v1"
    (entry,) = info["train_stats"]["hippo"]["versions"]
    assert entry["version"] == "v1" and entry["dice_after"] >= entry["dice_before"]
    assert (world["versions"] / "hippo" / "v1" / "model.yaml").is_file()
    after = np.mean(
        [_mean_dice(client.infer("hippo", i, {})[0], _reference(shared_data, i)) for i in held_out]
    )
    (world["base"] / "loop_figures.json").write_text(
        json.dumps(
            {**entry, "held_out_before": before, "held_out_after": after, "train_minutes": minutes}, indent=2
        )
    )
    print(f"held-out Dice {before:.3f} -> {after:.3f}; training took {minutes:.2f} min (request to switch)")
    assert after > before + 0.1, (before, after)
    assert _labels_digest(world["studies"]) == kept, "training must not touch the saved labels"


def test_a_stopped_training_leaves_no_version_and_keeps_serving(
    server: Server, world: dict[str, Path]
) -> None:
    current = httpx.get(f"{server.url}/info/").json()["train_stats"]["hippo"]["current"]
    started = httpx.post(f"{server.url}/train/hippo", json={"epochs": 1000, "lr": 0.003})
    assert started.status_code == 200, started.text
    version = started.json()["version"]
    time.sleep(3)
    stopped = httpx.delete(f"{server.url}/train/")
    assert stopped.status_code == 200 and stopped.json()["status"] == "STOPPED"
    assert httpx.get(f"{server.url}/train/").json()["status"] == "STOPPED"
    assert httpx.get(f"{server.url}/train/", params={"check_if_running": True}).status_code == 404
    root = world["versions"] / "hippo"
    _wait(lambda: not list(root.glob(f".{version}.partial")), "the stopped training's clean-up", server)
    assert not (root / version).exists()
    assert httpx.get(f"{server.url}/info/").json()["train_stats"]["hippo"]["current"] == current
    image_id = sorted(p.name.removesuffix(".nii.gz") for p in world["studies"].glob("*.nii.gz"))[0]
    assert server.post_infer("hippo", image_id).status_code == 200


def test_other_strategies_and_unknown_ones(server: Server) -> None:
    first = httpx.post(f"{server.url}/activelearning/first", json={}).json()
    random_pick = httpx.post(f"{server.url}/activelearning/random", json={"seed": 1}).json()
    listing = httpx.get(f"{server.url}/datastore/", params={"output": "all"}).json()["objects"]
    unlabelled = sorted(i for i, o in listing.items() if "final" not in o["labels"])
    assert first["id"] == unlabelled[0] and random_pick["id"] in unlabelled
    unknown = httpx.post(f"{server.url}/activelearning/smartest", json={})
    assert unknown.status_code == 404 and "uncertainty" in unknown.json()["detail"]


def test_roll_back_with_the_cli(server: Server, world: dict[str, Path]) -> None:
    """``scseg label versions`` lists the history and rolls back (used while the server is stopped;
    here on a copy of the history, so the running server's is untouched)."""
    copy = world["base"] / "versions_copy"
    shutil.copytree(world["versions"], copy)
    model = f"hippo={world['model']}"
    listing = subprocess.run(
        [sys.executable, "-m", "scseg", "label", "versions", model, "--versions", str(copy)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert "v1" in listing.stdout and "current: v1" in listing.stdout
    back = subprocess.run(
        [sys.executable, "-m", "scseg", "label", "versions", model, "--versions", str(copy), "--use", "v0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert back.returncode == 0, back.stderr
    assert json.loads((copy / "hippo" / "versions.json").read_text())["current"] == "v0"
    missing = subprocess.run(
        [sys.executable, "-m", "scseg", "label", "versions", model, "--versions", str(copy), "--use", "v9"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode != 0 and "v9" in missing.stderr and "does not exist" in missing.stderr
