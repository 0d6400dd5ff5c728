"""One training of ``scseg label serve``: fine-tune the served version on annotators' labels.

Runs as its own process (``python -m scseg.label.finetune REQUEST.json``, started by
:mod:`scseg.label.training`), so a training can be stopped by its PID and never blocks inference.
It trains with scseg's own trainer, from the current version's weights, into a hidden
``.vN.partial`` folder; then it scores the current version and the new one on the held-aside
labelled images (Dice against the saved labels, on the images' own grids, as ``scseg predict``
segments them) and writes ``finetune.json``; only then is the folder renamed to ``vN``.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import time
from pathlib import Path

import nibabel as nib
from pydantic import BaseModel, ConfigDict, Field

from scseg.artefact.layout import RUN_CONFIG
from scseg.config.load import config_from_dict
from scseg.config.yaml_io import read_yaml
from scseg.data.cases import discover_cases, split_cases
from scseg.engine.predictor import Predictor
from scseg.engine.trainer import train
from scseg.errors import ScsegError
from scseg.evaluation.metrics import evaluate_case
from scseg.io.atomic import write_text_atomic

RESULT = "finetune.json"
PROGRESS = "progress.json"  # epochs done so far, for the server's status while it trains
DATA_CSV = "datastore.csv"
ORIGINAL_PREFIX = "original-"  # training cases from the model's own data set, kept apart by name


class LabelledImage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    image: Path
    label: Path


class FinetuneRequest(BaseModel):
    """What the server hands the training process (written to a JSON file it alone reads)."""

    model_config = ConfigDict(extra="forbid")

    version: str
    base: Path = Field(description="the served model's v0 (its config.yaml is the recipe)")
    init: Path = Field(description="the current version: its weights are the starting point")
    current_version: str
    out: Path
    train: list[LabelledImage] = Field(min_length=1)
    val: list[LabelledImage] = Field(min_length=1)
    original: bool = False
    epochs: int = Field(ge=1)
    time_minutes: float | None = Field(None, gt=0.0)
    lr: float | None = Field(None, gt=0.0)
    device: str = "auto"
    seed: int = 0


def partial_folder(out: Path) -> Path:
    """Where a training writes until it is done (``metrics.csv`` there shows its progress)."""
    return out.with_name(f".{out.name}.partial")


def _original_cases(base_config: dict, source: str) -> tuple[list[LabelledImage], str]:
    """The model's own training cases, when its data set is on this machine (else a note why not)."""
    try:
        config = config_from_dict(json.loads(json.dumps(base_config)), source)
        train_cases, _ = split_cases(discover_cases(config.data), config.data, config.train.seed)
    except ScsegError as err:
        return [], f"original training data not used: {err}"
    cases = [LabelledImage(name=ORIGINAL_PREFIX + c.name, image=c.image, label=c.label) for c in train_cases]
    return cases, f"plus {len(cases)} cases of the original training data"


def finetune_config(request: FinetuneRequest, work: Path) -> tuple[dict, str]:
    """The base model's training config, pointed at the labelled images and the current weights."""
    raw = read_yaml(request.base / RUN_CONFIG)
    if not isinstance(raw, dict):
        raise ScsegError(f"{request.base / RUN_CONFIG}: not a training config")
    train_images, note = list(request.train), f"{len(request.train)} labelled images"
    if request.original:
        extra, note_original = _original_cases(raw, str(request.base / RUN_CONFIG))
        train_images += extra
        note = f"{note}; {note_original}"
    with (work / DATA_CSV).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "name"])
        for item in [*train_images, *request.val]:
            writer.writerow([item.image, item.label, item.name])
    data = raw["data"]
    data.update(
        root=str(work),
        dataset=DATA_CSV,
        split={"train": [i.name for i in train_images], "val": [i.name for i in request.val]},
        max_cases=None,
        generate=None,
        label_set=None,  # its names, values and colours are in the config already; the file may be gone
    )
    raw["train"].update(
        init_weights=str(request.init),
        max_epochs=request.epochs,
        time_limit_minutes=request.time_minutes,
        val_interval=request.epochs,  # one validation, at the end: the held-aside images choose no epoch
        device=request.device,
        seed=request.seed,
        compile=False,
    )
    if request.lr is not None:
        raw["optimizer"]["lr"] = request.lr
    return raw, note


def held_aside_dice(model: Path, images: list[LabelledImage], device: str) -> dict[str, float]:
    """Mean Dice over the structures of each held-aside image, segmented as ``scseg predict`` does."""
    predictor = Predictor(model, device=device)
    names = dict(zip(predictor.label_values, predictor.label_names, strict=True))
    result = {}
    for item in images:
        prediction = predictor.predict(nib.load(item.image))
        scores = evaluate_case(prediction.labels, nib.load(item.label), names, item.name)
        found = [s.dice for s in scores if not math.isnan(s.dice)]
        result[item.name] = sum(found) / len(found) if found else math.nan
    return result


def _mean(values: dict[str, float]) -> float:
    found = [v for v in values.values() if not math.isnan(v)]
    return sum(found) / len(found) if found else math.nan


def run(request: FinetuneRequest) -> dict:
    """Train, score both versions, and publish the version folder; returns what ``finetune.json`` holds."""
    start = time.monotonic()
    work = partial_folder(request.out)
    shutil.rmtree(work, ignore_errors=True)  # a stopped training's leftovers
    work.mkdir(parents=True)
    raw, note = finetune_config(request, work)
    config = config_from_dict(raw, f"fine-tuning config for {request.version}", work)

    def report(epoch: int, seconds: float) -> None:
        progress = {"epoch": epoch, "total_epochs": request.epochs, "elapsed_min": round(seconds / 60, 2)}
        write_text_atomic(work / PROGRESS, json.dumps(progress))

    trained = train(config, work, on_epoch=report)
    before = held_aside_dice(request.init, request.val, request.device)
    after = held_aside_dice(work, request.val, request.device)
    dice_before, dice_after = _mean(before), _mean(after)
    accepted = not math.isnan(dice_after) and (math.isnan(dice_before) or dice_after >= dice_before)
    comparison = f"{dice_after:.4f} vs {dice_before:.4f} for {request.current_version}"
    result = {
        "version": request.version,
        "from_version": request.current_version,
        "accepted": accepted,
        "reason": (
            f"held-aside Dice {comparison}: serving {request.version}"
            if accepted
            else f"held-aside Dice {comparison} is worse: keeping {request.current_version}"
        ),
        "dice_before": round(dice_before, 4),
        "dice_after": round(dice_after, 4),
        "per_image": {n: {"before": round(before[n], 4), "after": round(after[n], 4)} for n in before},
        "train_images": [i.name for i in request.train],
        "val_images": [i.name for i in request.val],
        "data": note,
        "epochs": trained.epochs,
        "stopped_by_time": trained.stopped_by_time,
        "minutes": round((time.monotonic() - start) / 60, 2),
    }
    (work / RESULT).write_text(json.dumps(result, indent=2) + "\n")
    work.rename(request.out)
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m scseg.label.finetune REQUEST.json", file=sys.stderr)
        return 2
    request = FinetuneRequest.model_validate_json(Path(argv[0]).read_text())
    try:
        result = run(request)
    except ScsegError as err:
        print(f"fine-tuning failed: {err}", file=sys.stderr)
        return 1
    print(json.dumps({k: result[k] for k in ("version", "accepted", "reason", "epochs", "minutes")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
