"""The MONAI Label app: one infer model per scseg run directory or bundle named at start-up.

``scseg label serve`` writes a two-line ``main.py`` into the server's app folder that subclasses
:class:`ScsegLabelApp`; the models arrive in the app conf as JSON (``--conf scseg_models``).
Each model is served at its current version (:mod:`scseg.label.versions`); the app also holds the
train task (:mod:`scseg.label.training`) and the uncertainty scoring for active learning
(:mod:`scseg.label.active_learning`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scseg.label.compat import prepare_import

prepare_import()  # before the first monailabel import

from fastapi import HTTPException  # noqa: E402
from monailabel.interfaces.app import MONAILabelApp  # noqa: E402
from monailabel.interfaces.tasks.infer_v2 import InferTask  # noqa: E402

from scseg import __version__  # noqa: E402
from scseg.artefact import is_run_dir  # noqa: E402
from scseg.artefact.layout import RUN_CONFIG  # noqa: E402
from scseg.errors import ScsegError  # noqa: E402
from scseg.label.active_learning import STRATEGIES, UncertaintyScoring  # noqa: E402
from scseg.label.gateway import STUDIES_CONF, resolve_image  # noqa: E402
from scseg.label.infer import ScsegInferTask  # noqa: E402
from scseg.label.training import TrainableModel, TrainManager, TrainOptions  # noqa: E402
from scseg.label.versions import ModelVersions  # noqa: E402
from scseg.nn.registry import COMPOSITE_MODELS  # noqa: E402

logger = logging.getLogger(__name__)

MODELS_CONF = "scseg_models"  # JSON list of {"name": ..., "path": ...}
DEVICE_CONF = "scseg_device"
VERSIONS_CONF = "scseg_versions"  # the folder holding each model's versions


def _why_not_trainable(path: Path) -> str | None:
    """Why a served model cannot be fine-tuned here (None: it can)."""
    if not is_run_dir(path) or not (path / RUN_CONFIG).is_file():
        return "only run directories (with their config.yaml) are fine-tuned, not bundles or lone .pt files"
    from scseg.artefact.layout import read_model_spec

    network = read_model_spec(path / "model.yaml").network.name
    if network in COMPOSITE_MODELS:
        return f"a {network} model is several networks; fine-tune its members with `scseg train` instead"
    return None


def _training_lr(path: Path) -> float | None:
    from scseg.config.yaml_io import read_yaml

    raw = read_yaml(path / RUN_CONFIG) or {}
    lr = (raw.get("optimizer") or {}).get("lr")
    return float(lr) if isinstance(lr, (int, float)) else None


class ScsegLabelApp(MONAILabelApp):
    """MONAI Label app serving scseg models: inference, training from saved labels, active learning."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.models: list[dict[str, str]] = json.loads(conf.get(MODELS_CONF, "[]"))
        self.device = conf.get(DEVICE_CONF, "auto")
        self.versions_root = Path(conf.get(VERSIONS_CONF) or Path(app_dir) / "versions")
        self.trainable: dict[str, TrainableModel] = {}
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
        self.training = TrainManager(self.trainable, self.datastore(), self.device, self._use_version)
        self.scoring = UncertaintyScoring(self.datastore(), lambda i: resolve_image(i), self.device)

    def init_infers(self) -> dict[str, InferTask]:
        infers: dict[str, InferTask] = {}
        for entry in self.models:
            name, base = entry["name"], Path(entry["path"])
            versions = ModelVersions(self.versions_root / name, base)
            try:
                path = versions.current_path()
            except ScsegError as err:  # its folder was deleted by hand: serve the base model
                logger.warning("scseg model %s: %s; serving v0 (%s)", name, err, base)
                path = versions.use("v0")
            task = ScsegInferTask(name, path, device=self.device)
            infers[name] = task
            why_not = _why_not_trainable(base)
            self.trainable[name] = TrainableModel(
                name, versions, why_not, None if why_not else _training_lr(base)
            )
            logger.info("scseg model %s: %s (%s), labels %s", name, base, versions.current, task.labels)
        # the app-level label list is the union of the models' labels (MONAI Label clients show it)
        merged: dict[str, Any] = {}
        for task in infers.values():
            merged.update(task.labels)
        self.labels = merged
        return infers

    def _use_version(self, name: str, folder: Path) -> None:
        """Serve ``folder`` as model ``name`` from the next request on (no restart), and rescore."""
        self._infers[name] = ScsegInferTask(name, folder, device=self.device)
        if name == self.scoring_model():
            self.scoring.start(name, folder.name, folder)

    def scoring_model(self) -> str | None:
        """The model active learning scores with by default: the first trainable one, else the first."""
        trainable = [n for n, m in self.trainable.items() if m.why_not is None]
        return (trainable or list(self._infers) or [None])[0]

    def start_scoring(self, model: str | None) -> dict[str, Any]:
        """Score the datastore with ``model``'s current version (default: :meth:`scoring_model`)."""
        model = model or self.scoring_model()
        if model not in self._infers:
            raise HTTPException(
                404, f"unknown model {model!r}; this server has: {', '.join(sorted(self._infers))}"
            )
        versions = self.trainable[model].versions
        return self.scoring.start(model, versions.current, versions.current_path())

    def on_init_complete(self) -> None:
        super().on_init_complete()
        if self.scoring_model() is not None:
            self.start_scoring(None)

    def info(self) -> dict[str, Any]:
        meta = super().info()
        defaults = {k: v for k, v in asdict(TrainOptions()).items()}
        meta["trainers"] = {
            name: {"description": f"fine-tune {name} on the saved labels", "config": defaults}
            for name, model in self.trainable.items()
            if model.why_not is None
        }
        meta["strategies"] = {name: {"description": text} for name, text in STRATEGIES.items()}
        meta["scoring"] = {"uncertainty": {"description": "test-time mirroring disagreement per image"}}
        meta["train_stats"] = self.training.stats()
        return meta

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
