"""Start the real monailabel server with the scseg app (``scseg label serve``).

The server runs in this process (uvicorn), so the PID a caller sees is the server's: stop it with
SIGTERM. monailabel writes ``model/ lib/ logs/ bin/`` into its app folder, so the app folder is a
per-user cache folder (never the installed package).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scseg.artefact import is_bundle, is_run_dir
from scseg.engine.predictor import Predictor
from scseg.errors import ConfigError, RunDirError
from scseg.io.atomic import write_text_atomic

APP_MAIN = '''"""Written by `scseg label serve`: the MONAI Label app is scseg's (scseg.label.app)."""
from scseg.label.app import ScsegLabelApp


class App(ScsegLabelApp):
    pass
'''


@dataclass
class ServedModel:
    name: str
    path: Path


def default_app_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "scseg" / "monailabel-app"


def parse_models(values: list[str]) -> list[ServedModel]:
    """``--model [NAME=]PATH`` values: run directories or scseg bundles, with unique names.

    Raises:
        ConfigError: no model, a duplicate name, or a path that is neither a run dir nor a bundle.
    """
    if not values:
        raise ConfigError("give at least one --model RUN_DIR_OR_BUNDLE")
    specs: list[ServedModel] = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or "/" in name or os.sep in name:
            name, path = "", value
        folder = Path(path).expanduser().resolve()
        if not (folder.is_file() or is_run_dir(folder) or is_bundle(folder)):
            raise RunDirError(
                f"--model {value}: {folder} is neither a run directory, a bundle written by "
                "`scseg export-bundle`, nor a .pt checkpoint"
                + ("" if folder.exists() else " (it does not exist)")
            )
        name = name or re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.stem if folder.is_file() else folder.name)
        if any(s.name == name for s in specs):
            raise ConfigError(f"--model: two models are named {name!r}; name them with NAME=PATH")
        specs.append(ServedModel(name, folder))
    return specs


def check_models(specs: list[ServedModel]) -> None:
    """Load each model once before the server starts, so a bad one fails here with its path."""
    for spec in specs:
        Predictor(spec.path, device="cpu")


def write_app(app_dir: Path) -> Path:
    app_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(app_dir / "main.py", APP_MAIN)
    return app_dir


TOKEN_ENV = "SCSEG_LABEL_TOKEN"


def run_server(
    specs: list[ServedModel],
    studies: Path,
    datastore: Path,
    app_dir: Path,
    host: str,
    port: int,
    device: str,
    token: str | None = None,
    max_upload_mb: int = 256,
    versions: Path | None = None,
) -> None:
    """Serve the scseg app with uvicorn in this process (returns when the server stops).

    The app is monailabel's app instance (our ``ScsegLabelApp``) behind scseg's own, smaller HTTP
    surface (:mod:`scseg.label.gateway`) instead of monailabel's app with all its routers.
    Sessions, caches and uploads live under ``app_dir``.
    """
    from scseg.label.compat import prepare_import

    prepare_import()  # before monailabel's first import
    import uvicorn
    from monailabel.config import settings

    from scseg.label.app import DEVICE_CONF, MODELS_CONF, VERSIONS_CONF
    from scseg.label.gateway import STUDIES_CONF, build_app

    app_dir = write_app(app_dir.resolve())
    for sub in ("model", "logs", "sessions", "cache", "uploads", "tmp"):
        (app_dir / sub).mkdir(exist_ok=True)
    # Starlette spools form uploads to temp files: keep them (and any library's) inside the app folder
    tempfile.tempdir = str(app_dir / "tmp")
    # what monailabel's start_server would set, without its PATH / PYTHONPATH / .env side effects
    settings.MONAI_LABEL_APP_DIR = str(app_dir)
    settings.MONAI_LABEL_STUDIES = str(datastore.resolve())
    settings.MONAI_LABEL_SERVER_PORT = port
    settings.MONAI_LABEL_SESSION_PATH = str(app_dir / "sessions")
    settings.MONAI_LABEL_DATASTORE_CACHE_PATH = str(app_dir / "cache")
    settings.MONAI_LABEL_APP_CONF = {
        MODELS_CONF: json.dumps([{"name": s.name, "path": str(s.path)} for s in specs]),
        DEVICE_CONF: device,
        STUDIES_CONF: str(studies.resolve()),
        VERSIONS_CONF: str((versions or app_dir / "versions").resolve()),
    }
    app = build_app(app_dir, token=token or None, max_upload_bytes=max_upload_mb << 20)
    uvicorn.run(app, host=host, port=port, log_level="info")
