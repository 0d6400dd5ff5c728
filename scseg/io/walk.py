"""List the files under a folder tree and say which folders could not be read (never skip silently)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FileTree:
    """The files found, and ``(folder, reason)`` for each folder that could not be listed."""

    files: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def walk_files(root: Path, skip_folder: Callable[[Path], bool] | None = None) -> FileTree:
    """Every file under ``root`` (or ``root`` itself when it is a file), sorted.

    ``Path.rglob`` silently leaves out folders it may not list; ``os.walk``'s ``onerror`` reports
    them, so a caller can record a folder of DICOM files that it could not read as failed.

    Args:
        root: a folder or a file.
        skip_folder: folders for which this is true are not entered (e.g. the output folder).
    """
    tree = FileTree()
    if root.is_file():
        tree.files.append(root)
        return tree

    def unreadable(err: OSError) -> None:
        tree.unreadable.append((Path(err.filename), err.strerror or str(err)))

    for folder, dirs, names in os.walk(root, onerror=unreadable):
        here = Path(folder)
        if skip_folder is not None:
            dirs[:] = [d for d in dirs if not skip_folder(here / d)]
        dirs.sort()
        for name in names:
            path = here / name
            if path.is_file():
                tree.files.append(path)
            elif not path.exists():
                tree.unreadable.append((path, "a link to nothing"))
    tree.files.sort()
    return tree
