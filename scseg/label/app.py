"""The MONAI Label app: one infer model per scseg run directory or bundle named at start-up.

``scseg label serve`` writes a two-line ``main.py`` into the server's app folder that subclasses
:class:`ScsegLabelApp`; the models arrive in the app conf as JSON (``--conf scseg_models``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from scseg.label.compat import prepare_import

prepare_import()  # before the first monailabel import

from fastapi import HTTPException  # noqa: E402
from monailabel.interfaces.app import MONAILabelApp  # noqa: E402
from monailabel.interfaces.tasks.infer_v2 import InferTask  # noqa: E402

from scseg import __version__  # noqa: E402
from scseg.label.gateway import STUDIES_CONF  # noqa: E402
from scseg.label.infer import ScsegInferTask  # noqa: E402

logger = logging.getLogger(__name__)

MODELS_CONF = "scseg_models"  # JSON list of {"name": ..., "path": ...}
DEVICE_CONF = "scseg_device"


class ScsegLabelApp(MONAILabelApp):
    """MONAI Label app serving scseg models (inference only; scseg trains from its own configs)."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.models: list[dict[str, str]] = json.loads(conf.get(MODELS_CONF, "[]"))
        self.device = conf.get(DEVICE_CONF, "auto")
        labels: dict[str, int] = {}
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="scseg",
            description=f"scseg {__version__}: squeeze & excitation segmentation models",
            version=__version__,
            labels=labels,
        )

    def init_infers(self) -> dict[str, InferTask]:
        infers: dict[str, InferTask] = {}
        for entry in self.models:
            task = ScsegInferTask(entry["name"], Path(entry["path"]), device=self.device)
            infers[entry["name"]] = task
            logger.info("scseg model %s: %s, labels %s", entry["name"], entry["path"], task.labels)
        # the app-level label list is the union of the models' labels (MONAI Label clients show it)
        merged: dict[str, Any] = {}
        for task in infers.values():
            merged.update(task.labels)
        self.labels = merged
        return infers

    def label_values(self) -> set[int]:
        """Every label value some served model writes (what a saved label may contain besides 0)."""
        return {int(v) for task in self._infers.values() for v in task.labels.values()}

    def infer(self, request: dict[str, Any], datastore: Any = None) -> dict[str, Any]:
        """Reject unknown models (404; monailabel answers 500) and any image that is not a file or
        folder inside the studies datastore (404, the same answer whether it exists or not)."""
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(
                404, f"unknown model {model!r}; this server has: {', '.join(sorted(self._infers)) or 'none'}"
            )
        image = request.get("image")
        root = Path(self.conf.get(STUDIES_CONF) or self.studies).resolve()
        if not isinstance(image, str) or not image or not Path(image).resolve().is_relative_to(root):
            raise HTTPException(404, "unknown image")
        return super().infer(
            {"model": model, "image": str(Path(image).resolve()), "save_label": False}, datastore
        )
