"""Where the real test data live: ``$SCSEG_DATA``, else ``../shared/data`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$SCSEG_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("SCSEG_DATA")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def expand_data_vars(path: str) -> str:
    """Replace ``${SCSEG_DATA}`` in a config path by :func:`shared_data_dir`."""
    return path.replace("${SCSEG_DATA}", str(shared_data_dir()))
