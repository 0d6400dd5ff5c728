"""A little disk space kept aside, so that the file saying what happened can be written on a full disk.

A batch that fills its disk fails the case being written (its temp folder is removed), but the
disk may still be full when ``summary.csv`` is rewritten after it: without room for that one file the
run would end with the rows of an earlier moment. A reserve file as large as the next rewrite
needs is kept beside it and given up the moment such a write fails for lack of space.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
SLACK = 4096  # one file system block beyond the file itself


class SpaceReserve:
    """``.<report>.reserve`` beside ``report``, grown to each rewrite's size and given up on a full disk.

    Example:
        >>> import tempfile
        >>> report = Path(tempfile.mkdtemp()) / "summary.csv"
        >>> reserve = SpaceReserve(report)
        >>> reserve.write(lambda: report.write_text("a,b\\n"))
        >>> reserve.path.name, reserve.path.stat().st_size >= 4
        ('.summary.csv.reserve', True)
        >>> reserve.release()
    """

    def __init__(self, report: Path) -> None:
        self.report = Path(report)
        self.path = self.report.with_name(f".{self.report.name}.reserve")

    def write(self, write: Callable[[], object]) -> None:
        """Call ``write`` (which rewrites the report); on a full disk give up the reserve and call
        it once more. Then keep a reserve as large as the report now is (what its next rewrite
        needs, plus a block for its growth), if there is room for it.

        Raises:
            OSError: the second attempt failed too, or any other error of ``write``.
        """
        try:
            write()
        except OSError as err:
            if err.errno not in FULL_DISK:
                raise
            self.release()
            write()
        self._keep(self.report.stat().st_size + SLACK)

    def _keep(self, size: int) -> None:
        try:
            with open(self.path, "ab") as f:
                if os.fstat(f.fileno()).st_size < size:
                    os.posix_fallocate(f.fileno(), 0, size)  # really allocated, not a sparse file
        except OSError:  # a full disk, or a file system without fallocate: nothing kept
            self.release()

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
