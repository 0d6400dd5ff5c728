"""File-system names and printable text from hostile input (DICOM headers, file names).

Why a hash: sanitising is lossy (``A/B`` and ``A?B`` both become ``A_B``; IDs are cut to 80
characters), so a name that sanitising changed gets a short hash of the exact text appended. Two
different texts then never share a name, and one text always gets the same name (stable across
runs, whatever else is in the batch).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

MAX_NAME = 80


def sanitize(text: str) -> str:
    """Letters, digits, '-', '_' and '.'; anything else becomes '_' (safe as a file or folder name).

    Example:
        >>> sanitize("A/B C"), sanitize("..x"), sanitize("")
        ('A_B_C', 'x', 'unnamed')
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", printable(str(text))).strip("._")
    return cleaned[:MAX_NAME] or "unnamed"


def short_hash(text: str) -> str:
    """8 hex digits of SHA-1 of ``text`` (its exact bytes, undecodable file-name bytes included)."""
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def unique_name(text: str) -> str:
    """:func:`sanitize`, plus ``-<hash of text>`` when that changed anything, so the name is unique.

    Example:
        >>> unique_name("case_01"), unique_name("A/B") != unique_name("A?B")
        ('case_01', True)
    """
    cleaned = sanitize(text)
    if cleaned == text:
        return cleaned
    return f"{cleaned[: MAX_NAME - 9]}-{short_hash(text)}"


def printable(text: str) -> str:
    """``text`` with undecodable file-name bytes (Python keeps them as lone surrogates, which no
    UTF-8 writer accepts) written as ``\\xNN``.

    Example:
        >>> printable(os.fsdecode(b"case\\xff.nii"))
        'case\\\\xff.nii'
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def nifti_stem(path: Path) -> str:
    """The file name without ``.nii`` / ``.nii.gz``."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def display_path(path: Path) -> str:
    """A path as text that can be printed and written to CSV (see :func:`printable`)."""
    return printable(os.fspath(path))
