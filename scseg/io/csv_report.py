"""CSV files people open in spreadsheets: written atomically, with cells that cannot run as formulas.

A cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab / carriage return) is a formula to
Excel and LibreOffice; file names, PatientIDs and series descriptions come from DICOM headers and
are hostile by assumption. Such text cells get a leading ``'`` (OWASP's CSV-injection advice);
numbers, negative ones included, are left as they are. NUL and other control characters, and
file-name bytes that are not UTF-8, are written as ``\\xNN`` so a cell never breaks a reader.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from scseg.io.atomic import atomic_write_bytes
from scseg.io.names import printable

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cell(value: Any) -> Any:
    """``value`` made safe for a spreadsheet (text only; numbers pass unchanged).

    Example:
        >>> csv_cell("=HYPERLINK(\\"http://x\\")"), csv_cell("-1.5"), csv_cell("a\\x00b"), csv_cell(3)
        ('\\'=HYPERLINK("http://x")', '-1.5', 'a\\\\x00b', 3)
    """
    if not isinstance(value, str):
        return value
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", printable(value))
    if text.startswith(_FORMULA_START) and not _is_number(text):
        text = "'" + text
    return text


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV atomically (temp file + rename) with every cell passed through :func:`csv_cell`."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    atomic_write_bytes(path, lambda f: f.write(text.getvalue().encode()))
