"""Writes that never leave a half-written file or folder behind (temp next to the target, then rename)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import nibabel as nib

from scseg.errors import ConfigError
from scseg.io.names import printable


def current_umask() -> int:
    """The process umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_if_created(path: Path, directory: bool) -> None:
    """Give a temp file / folder the mode a plain ``open`` / ``mkdir`` would have: ``mkstemp`` and
    ``mkdtemp`` create them private (0600 / 0700), which would hide results from e.g. a PACS
    service account that the user's umask lets read them."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def atomic_write_bytes(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then rename it over ``path``.

    A crash mid-write leaves the old file intact (rename is atomic on POSIX file systems).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _as_if_created(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(folder: Path, option: str = "--output") -> None:
    """Create ``folder`` if needed and make sure files can be written into it.

    Raises:
        ConfigError: it lies under a file, or cannot be created or written to (the OS's reason).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".scseg-write-check-"):
            pass
    except OSError as err:
        raise ConfigError(
            f"{option} {printable(str(folder))} cannot be written to ({err.strerror or err})"
        ) from None


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def save_nifti_atomic(image: nib.Nifti1Image, path: Path) -> None:
    """Write ``image`` to ``path`` via a temp file in the same folder, then rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # nibabel picks compression from the suffix, so the temp name keeps ".nii.gz"
    tmp = path.with_name(f".{path.name}.partial.nii.gz")
    try:
        nib.save(image, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class AtomicDirectory:
    """Fill a fresh temp folder next to ``target``; on success it replaces ``target`` as a whole.

    An existing ``target`` stays untouched until every file of the new one is written; on an
    error the temp folder is removed and ``target`` is left as it was.

    Example:
        >>> with AtomicDirectory(Path("out/case1")) as tmp:   # doctest: +SKIP
        ...     (tmp / "volumes.csv").write_text("...")
    """

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent)
        )
        _as_if_created(self.tmp, directory=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.{os.getpid()}.old")
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# the temporaries the writers above leave when a process is killed mid-write
_STALE_SUFFIXES = (".partial", ".tmp", ".partial.nii.gz", ".old")


def clean_stale_temporaries(root: Path) -> int:
    """Remove what writes killed mid-way left under ``root``; put back a folder that
    :class:`AtomicDirectory` had moved aside (``.old``) when its replacement never arrived.

    Only for a folder no other process is writing into (hold its lock first).

    Returns:
        How many temporaries were removed or restored.
    """
    count = 0
    for path in sorted(root.rglob(".*"), key=lambda p: len(p.parts), reverse=True):
        name = path.name
        if not name.endswith(_STALE_SUFFIXES) or not path.exists():
            continue
        if name.endswith(".old") and path.is_dir():
            # ".<target>.<pid>.old": the target was moved here and the new one not renamed in yet
            target = path.with_name(name[1:].rsplit(".", 2)[0])
            if not target.exists():
                os.replace(path, target)
                count += 1
                continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        count += 1
    return count
