"""Active learning for ``scseg label serve``: which image an annotator labels next.

Strategies (``POST /activelearning/{strategy}``), always among images without a label of the
requested tag (``final`` by default):

- ``first``: the first by image id;
- ``random``: any, uniformly;
- ``uncertainty``: the one the current model version is least sure of. The scoring task
  (:class:`UncertaintyScoring`, started at server start, after every new version and by
  ``POST /scoring/uncertainty``) scores every image without a ``final`` label in the background
  with test-time mirroring:
  the mean over structures of 1 - IoU of the passes' masks (:mod:`scseg.engine.uncertainty`), a
  structure no pass finds counting as 1 (the model misses it there). A model trained without
  mirroring has one pass; its score is then 1 - the mean top-class probability over the voxels it
  calls foreground (least confidence). Images not scored yet come after the scored ones, by id.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException

from scseg.engine.predictor import Prediction, Predictor
from scseg.label.infer import read_volume

STRATEGIES = {
    "first": "the first unlabelled image, by id",
    "random": "a random unlabelled image",
    "uncertainty": "the unlabelled image the current model version is least sure of (test-time mirroring)",
}


def image_score(prediction: Prediction) -> float:
    """How unsure the model was of ``prediction`` (0: sure, up to 1); see the module docstring."""
    if prediction.uncertainty:
        values = [1.0 if math.isnan(s.uncertainty) else s.uncertainty for s in prediction.uncertainty]
        return float(np.mean(values))
    assert prediction.probabilities is not None
    labels = np.asanyarray(prediction.labels.dataobj) != 0
    if not labels.any():
        return 1.0
    top = np.asanyarray(prediction.probabilities.dataobj).max(axis=-1)
    return float(1.0 - top[labels].mean())


@dataclass
class _Scoring:
    model: str
    version: str
    status: str = "RUNNING"
    scores: dict[str, float] = field(default_factory=dict)
    total: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    start_ts: str = field(default_factory=lambda: datetime.now().strftime("%Y-%m-%d %H:%M:%S"))
    end_ts: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


class UncertaintyScoring:
    """Scores the datastore's images with one model version in a background thread.

    Args:
        datastore: monailabel's datastore.
        image_path: image id -> its file or series folder (checked to lie inside the studies).
        device: what the scoring runs on.
    """

    def __init__(self, datastore: Any, image_path: Callable[[str], Path], device: str) -> None:
        self.datastore, self.image_path, self.device = datastore, image_path, device
        self._lock = threading.Lock()
        self._current: _Scoring | None = None

    def start(self, model: str, version: str, artefact: Path) -> dict[str, Any]:
        """Score every image with ``artefact`` (model ``model``, version ``version``); a scoring of
        another model or version still running is cancelled."""
        with self._lock:
            running = self._current
            if running and running.status == "RUNNING":
                if (running.model, running.version) == (model, version):
                    return self.record()
                running.cancel.set()
            job = _Scoring(model, version)
            self._current = job
        threading.Thread(target=self._run, args=(job, artefact), daemon=True).start()
        return self.record()

    def _run(self, job: _Scoring, artefact: Path) -> None:
        try:
            predictor = Predictor(artefact, device=self.device, tta=True)
            # labelled images need no score (``final``: the tag every strategy defaults to)
            store = self.datastore
            images = sorted(i for i in store.list_images() if "final" not in store.get_labels_by_image_id(i))
            job.total = len(images)
            for image_id in images:
                if job.cancel.is_set():
                    job.status = "STOPPED"
                    break
                try:
                    volume = read_volume(self.image_path(image_id))
                    prediction = predictor.predict(volume, probabilities=predictor.passes == 1)
                    job.scores[image_id] = image_score(prediction)
                except HTTPException as err:  # an image that cannot be segmented is skipped
                    job.errors[image_id] = str(err.detail)
            else:
                job.status = "DONE"
        except Exception as err:  # the thread must not die silently: the status says why
            job.status = "ERROR"
            job.errors["*"] = f"{type(err).__name__}: {err}"
        job.end_ts = datetime.now().strftime("%Y-%m-%d %H:%M:%S")

    def record(self) -> dict[str, Any]:
        job = self._current
        if job is None:
            return {"status": "NOT STARTED"}
        return {
            "method": "uncertainty",
            "model": job.model,
            "version": job.version,
            "status": job.status,
            "scored": len(job.scores),
            "total": job.total,
            "errors": dict(job.errors),
            "start_ts": job.start_ts,
            "end_ts": job.end_ts,
        }

    def scores_for(self, model: str, version: str) -> dict[str, float]:
        job = self._current
        if job is None or (job.model, job.version) != (model, version):
            return {}
        return dict(job.scores)


def next_sample(
    strategy: str, unlabelled: list[str], scores: dict[str, float], seed: int | None = None
) -> tuple[str, float | None]:
    """The image to label next among ``unlabelled``, and its uncertainty score (if it has one).

    Raises:
        HTTPException: 404 for an unknown strategy or when every image is labelled.
    """
    if strategy not in STRATEGIES:
        raise HTTPException(
            404, f"unknown strategy {strategy!r}; strategies: {', '.join(sorted(STRATEGIES))}"
        )
    if not unlabelled:
        raise HTTPException(404, "every image in the datastore is labelled")
    ordered = sorted(unlabelled)
    if strategy == "first":
        return ordered[0], scores.get(ordered[0])
    if strategy == "random":
        pick = random.Random(seed).choice(ordered)
        return pick, scores.get(pick)
    # uncertainty: scored images, most uncertain first; unscored ones after them, by id
    best = min(ordered, key=lambda i: (i not in scores, -scores.get(i, 0.0), i))
    return best, scores.get(best)
