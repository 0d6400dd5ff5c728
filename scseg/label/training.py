"""The train task of ``scseg label serve``: started by ``POST /train/{model}``, never by a label save.

One training at a time. It runs :mod:`scseg.label.finetune` in a child process (stopped by its PID,
with its children); a thread waits for it, records the new version in the model's history
(:mod:`scseg.label.versions`) and, when the new version is not worse on the held-aside labelled
images, switches inference to it without a restart. The status follows monailabel's task records
(``id``, ``status`` SUBMITTED / RUNNING / DONE / ERROR / STOPPED, ``start_ts``, ``end_ts``,
``details``), which 3D Slicer's MONAI Label module polls.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from fastapi import HTTPException

from scseg.label.finetune import PROGRESS, RESULT, FinetuneRequest, LabelledImage, partial_folder
from scseg.label.versions import ModelVersions

SAFE_TAG_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
IGNORED_PARAMS = {"client_id"}  # monailabel's client adds it to every request


@dataclass
class TrainOptions:
    """What a client may set per training (``POST /train/{model}`` JSON body); the defaults are
    what ``GET /info/`` shows under ``trainers``, and what Slicer offers to edit."""

    epochs: int = 20
    time_minutes: float | None = 10.0  # a bound, so an annotator never waits without end on a CPU
    lr: float | None = None  # default: a tenth of the model's training LR (usual for fine-tuning)
    tag: str = "final"  # which saved labels train
    original: bool = False  # also train on the model's original training data, when it is here
    val_fraction: float = 0.2  # labelled images held aside to judge the new version

    @classmethod
    def parse(cls, params: object) -> TrainOptions:
        """Validate a request body.

        Raises:
            HTTPException: 422 naming the key and what was expected.
        """
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise HTTPException(422, "the training parameters must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known - IGNORED_PARAMS)
        if unknown:
            raise HTTPException(422, f"unknown training parameter(s) {unknown}; known: {sorted(known)}")
        options = cls()
        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "epochs": (
                lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10000,
                "an integer 1..10000",
            ),
            "time_minutes": (
                lambda v: v is None or (_number(v) and 0 < v <= 7 * 24 * 60),
                "minutes > 0, or null",
            ),
            "lr": (lambda v: v is None or (_number(v) and 0 < v < 1), "a learning rate in (0, 1), or null"),
            "tag": (
                lambda v: isinstance(v, str) and 0 < len(v) <= 64 and set(v) <= SAFE_TAG_CHARS,
                "a label tag",
            ),
            "original": (lambda v: isinstance(v, bool), "true or false"),
            "val_fraction": (lambda v: _number(v) and 0 < v < 1, "a fraction in (0, 1)"),
        }
        for key, value in params.items():
            if key in IGNORED_PARAMS:
                continue
            ok, expected = checks[key]
            if not ok(value):
                raise HTTPException(422, f"training parameter {key!r}: expected {expected}, got {value!r}")
            setattr(options, key, value)
        return options


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class TrainableModel:
    """A served model and its version history; ``why_not`` says why it cannot be fine-tuned."""

    name: str
    versions: ModelVersions
    why_not: str | None = None
    base_lr: float | None = None


def _unit_hash(image_id: str) -> float:
    return int(hashlib.sha256(image_id.encode()).hexdigest()[:12], 16) / float(1 << 48)


def held_aside(image_ids: list[str], fraction: float) -> set[str]:
    """The labelled images that judge a new version: the ``fraction`` (at least one, and never all)
    whose id hashes lowest. The choice depends on the ids, not on the order they were labelled in,
    so consecutive trainings are judged on largely the same images."""
    ranked = sorted(image_ids, key=_unit_hash)
    count = min(max(1, round(fraction * len(ranked))), max(1, len(ranked) - 1))
    return set(ranked[:count])


def _now() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class _Task:
    id: str
    model: str
    version: str
    options: TrainOptions
    status: str = "SUBMITTED"
    start_ts: str = field(default_factory=_now)
    end_ts: str | None = None
    result: dict[str, Any] | None = None
    process: subprocess.Popen | None = None
    log: Path | None = None
    out: Path | None = None

    def record(self) -> dict[str, Any]:
        details: list[str] = []
        if self.log is not None and self.log.is_file():
            details = self.log.read_text(errors="replace").splitlines()[-20:]
        progress = {}
        if self.out is not None and (partial_folder(self.out) / PROGRESS).is_file():
            progress = json.loads((partial_folder(self.out) / PROGRESS).read_text())
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "start_ts": self.start_ts,
            "end_ts": self.end_ts,
            "request": vars(self.options),
            "progress": progress,
            "result": self.result,
            "details": details,
        }


class TrainManager:
    """Starts, watches and stops the fine-tuning of served models (see the module docstring).

    Args:
        models: the served models by name.
        datastore: monailabel's datastore (the saved labels).
        device: the device trainings use.
        on_new_version: called with (model name, version folder) when a new version is accepted;
            it must load it for inference (an exception keeps the current version).
    """

    def __init__(
        self,
        models: dict[str, TrainableModel],
        datastore: Any,
        device: str,
        on_new_version: Callable[[str, Path], None],
    ) -> None:
        self.models, self.datastore, self.device = models, datastore, device
        self.on_new_version = on_new_version
        self._lock = threading.Lock()
        self._tasks: list[_Task] = []
        for model in models.values():  # what a server killed mid-training left behind
            for stale in model.versions.root.glob(".v*.partial"):
                shutil.rmtree(stale, ignore_errors=True)

    def running(self) -> _Task | None:
        return next((t for t in self._tasks if t.status in ("SUBMITTED", "RUNNING")), None)

    def start(self, name: str, params: object) -> dict[str, Any]:
        """Start a training (202-like: returns at once with the task record).

        Raises:
            HTTPException: 404 unknown model, 409 a training already runs, 422 bad parameters, a
                model that cannot be fine-tuned, or too few labelled images.
        """
        model = self.models.get(name)
        if model is None:
            raise HTTPException(
                404, f"unknown model {name!r}; trainable here: {sorted(self.models) or 'none'}"
            )
        options = TrainOptions.parse(params)
        if model.why_not:
            raise HTTPException(422, f"model {name!r} cannot be fine-tuned here: {model.why_not}")
        with self._lock:
            busy = self.running()
            if busy is not None:
                raise HTTPException(
                    409,
                    f"a training is already running (model {busy.model}, {busy.version}, since "
                    f"{busy.start_ts}); stop it with DELETE /train/ or wait for it",
                )
            train, val = self._labelled(options)
            version = model.versions.next_version()
            out = model.versions.root / version
            model.versions.root.mkdir(parents=True, exist_ok=True)
            request = FinetuneRequest(
                version=version,
                base=model.versions.base,
                init=model.versions.current_path(),
                current_version=model.versions.current,
                out=out,
                train=train,
                val=val,
                original=options.original,
                epochs=options.epochs,
                time_minutes=options.time_minutes,
                lr=options.lr if options.lr is not None else (model.base_lr or 1e-3) / 10,
                device=self.device,
            )
            request_file = model.versions.root / f"{version}.request.json"
            request_file.write_text(request.model_dump_json(indent=2))
            task = _Task(
                str(uuid.uuid4()), name, version, options, log=model.versions.root / f"{version}.log", out=out
            )
            with task.log.open("w") as log:  # type: ignore[union-attr]
                task.process = subprocess.Popen(
                    [sys.executable, "-m", "scseg.label.finetune", str(request_file)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            task.status = "RUNNING"
            self._tasks.append(task)
        threading.Thread(target=self._wait, args=(task, model), daemon=True).start()
        return task.record()

    def _labelled(self, options: TrainOptions) -> tuple[list[LabelledImage], list[LabelledImage]]:
        """The datastore's images with a label of ``options.tag``, split into train / held aside."""
        pairs: dict[str, LabelledImage] = {}
        for image_id in sorted(self.datastore.list_images()):
            label_id = self.datastore.get_labels_by_image_id(image_id).get(options.tag)
            if not label_id:
                continue
            image = Path(self.datastore.get_image_uri(image_id))
            label = Path(self.datastore.get_label_uri(label_id, options.tag))
            if image.is_file() and label.is_file():
                pairs[image_id] = LabelledImage(name=image_id, image=image, label=label)
        if len(pairs) < 2:
            raise HTTPException(
                422,
                f"training needs at least 2 images with a {options.tag!r} label (one to train on, one "
                f"held aside to judge the new version); the datastore has {len(pairs)}",
            )
        aside = held_aside(list(pairs), options.val_fraction)
        train = [p for i, p in pairs.items() if i not in aside]
        val = [p for i, p in pairs.items() if i in aside]
        return train, val

    def _wait(self, task: _Task, model: TrainableModel) -> None:
        assert task.process is not None and task.out is not None
        code = task.process.wait()
        with self._lock:
            if task.status == "STOPPED":
                shutil.rmtree(partial_folder(task.out), ignore_errors=True)
                return
            if code != 0 or not (task.out / RESULT).is_file():
                task.status, task.end_ts = "ERROR", _now()
                task.result = {
                    "accepted": False,
                    "reason": f"the training process failed (exit code {code}); see details",
                }
                shutil.rmtree(partial_folder(task.out), ignore_errors=True)
                return
            result = json.loads((task.out / RESULT).read_text())
        accepted = bool(result["accepted"])
        if accepted:
            try:
                self.on_new_version(task.model, task.out)
            except Exception as err:  # the version stays on disk; inference keeps the current one
                accepted = False
                result["reason"] += (
                    f"; but it could not be loaded for inference ({err}): kept the current version"
                )
        entry = {
            "version": task.version,
            "created": _now(),
            "accepted": accepted,
            **{
                k: result[k]
                for k in ("from_version", "reason", "dice_before", "dice_after", "epochs", "minutes", "data")
            },
            "tag": task.options.tag,
            "train_images": len(result["train_images"]),
            "val_images": result["val_images"],
        }
        model.versions.record(entry, make_current=accepted)
        with self._lock:
            task.result = {**result, "accepted": accepted}
            task.status, task.end_ts = "DONE", _now()

    def status(self, check_if_running: bool = False) -> dict[str, Any]:
        """The running task (``check_if_running``) or the latest one.

        Raises:
            HTTPException: 404 when there is none.
        """
        with self._lock:
            task = self.running() if check_if_running else (self._tasks[-1] if self._tasks else None)
            if task is None:
                raise HTTPException(
                    404, "no training is running" if check_if_running else "no training has run yet"
                )
            return task.record()

    def stop(self) -> dict[str, Any]:
        """Stop the running training (its process and its children); its partial version is removed.

        Raises:
            HTTPException: 409 when no training runs.
        """
        with self._lock:
            task = self.running()
            if task is None or task.process is None:
                raise HTTPException(409, "no training is running, so there is nothing to stop")
            task.status, task.end_ts = "STOPPED", _now()
            try:
                for child in psutil.Process(task.process.pid).children(recursive=True):
                    child.kill()
            except psutil.NoSuchProcess:
                pass
            task.process.kill()
            return task.record()

    def shutdown(self) -> None:
        """Stop a running training when the server stops (its partial version is removed)."""
        if self.running() is not None:
            self.stop()

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per model: its versions, and while it trains the epochs done (what Slicer's progress bar reads)."""
        with self._lock:
            running = self.running()
            stats: dict[str, dict[str, Any]] = {}
            for name, model in self.models.items():
                entry: dict[str, Any] = model.versions.summary()
                if model.why_not:
                    entry["trainable"] = False
                    entry["why_not"] = model.why_not
                if running is not None and running.model == name:
                    progress = running.record()["progress"]
                    entry.update(status="RUNNING", epoch=progress.get("epoch", 0),
                                 total_epochs=running.options.epochs)  # fmt: skip
                stats[name] = entry
            return stats
