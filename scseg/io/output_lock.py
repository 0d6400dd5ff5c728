"""One writer per output folder: a lock file that the OS releases when its holder dies (even by
``kill -9``), so a second ``scseg predict`` into the same folder is refused instead of both runs
replacing each other's cases and summary."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from scseg.errors import ConfigError
from scseg.io.names import display_path

LOCK_FILE = ".scseg.lock"


class OutputLock:
    """``with OutputLock(out_dir):`` holds an exclusive ``flock`` on ``out_dir/.scseg.lock``.

    Raises:
        ConfigError: another process holds it (its pid is in the message).
    """

    def __init__(self, out_dir: Path, command: str = "scseg predict") -> None:
        self.path = out_dir / LOCK_FILE
        self.command = command
        self.fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"another {self.command} (pid {holder}) is writing into {display_path(self.path.parent)}; "
                "wait for it to finish or choose another --output"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
