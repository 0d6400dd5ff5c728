"""Model versions of ``scseg label serve``: each training from annotators' labels adds one.

Layout, under ``--versions`` (default ``<app dir>/versions``)::

    <versions>/<model>/versions.json   the history: base model, current version, one entry per training
    <versions>/<model>/v1/, v2/, ...    run directories (model artefacts) written by the fine-tuning

``v0`` is the model given with ``--model`` (never copied, never written). A new version never
replaces an old one; the server serves ``current`` and moves it only when a new version is not
worse on the held-aside labels. ``scseg label versions`` lists the history and rolls back.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from scseg.errors import ConfigError
from scseg.io.atomic import write_text_atomic

HISTORY = "versions.json"
BASE_VERSION = "v0"
VERSION_NAME = re.compile(r"v(\d{1,6})")


class ModelVersions:
    """The version history of one served model (thread-safe; the server's only writer).

    Args:
        root: ``<versions>/<model>``.
        base: the model given with ``--model``: version ``v0``. A history written for another
            base starts over at ``v0`` (its version folders stay, numbering goes on).
    """

    def __init__(self, root: Path, base: Path) -> None:
        self.root, self.base = Path(root), Path(base).resolve()
        self._lock = threading.Lock()
        self.history: dict[str, Any] = {"base": str(self.base), "current": BASE_VERSION, "versions": []}
        path = self.root / HISTORY
        if path.is_file():
            try:
                stored = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise ConfigError(f"{path}: not a readable version history ({err})") from None
            if isinstance(stored, dict) and stored.get("base") == str(self.base):
                self.history = stored

    @property
    def current(self) -> str:
        return str(self.history["current"])

    def path_of(self, version: str) -> Path:
        """The artefact of ``version`` (``v0``: the base model).

        Raises:
            ConfigError: no such version in this history, or its folder is gone.
        """
        if version == BASE_VERSION:
            return self.base
        known = {e["version"] for e in self.history["versions"]}
        folder = self.root / version
        if version not in known or not folder.is_dir():
            listed = ", ".join([BASE_VERSION, *sorted(known, key=_number)])
            raise ConfigError(f"model version {version!r} does not exist (versions: {listed})")
        return folder

    def current_path(self) -> Path:
        return self.path_of(self.current)

    def next_version(self) -> str:
        """A version name no folder uses yet (stopped or failed trainings keep their number)."""
        taken = [_number(p.name) for p in self.root.glob("v*")] if self.root.is_dir() else []
        taken += [_number(e["version"]) for e in self.history["versions"]]
        return f"v{max([0, *taken]) + 1}"

    def record(self, entry: dict[str, Any], make_current: bool) -> None:
        """Add a finished training (``entry["version"]`` names it) and, if accepted, serve it."""
        with self._lock:
            self.history["versions"].append(entry)
            if make_current:
                self.history["current"] = entry["version"]
            self._save()

    def use(self, version: str) -> Path:
        """Serve ``version`` from now on (rollback); returns its artefact."""
        with self._lock:
            path = self.path_of(version)
            self.history["current"] = version
            self._save()
        return path

    def summary(self) -> dict[str, Any]:
        """What ``GET /info/`` shows: no server paths, only names and scores."""
        accepted = [e for e in self.history["versions"] if e["version"] == self.current]
        return {
            "current": self.current,
            # the served version's held-aside Dice: 3D Slicer shows it as the model's accuracy
            "best_metric": accepted[0].get("dice_after") if accepted else None,
            "versions": [{k: v for k, v in e.items() if k != "path"} for e in self.history["versions"]],
        }

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.root / HISTORY, json.dumps(self.history, indent=2) + "\n")


def _number(name: str) -> int:
    match = VERSION_NAME.fullmatch(name)
    return int(match.group(1)) if match else -1
