"""Label sets from lookup-table files: which structures a model segments, with their ids and colours.

Writing 98 FreeSurfer ids and names by hand in YAML is how mistakes get in; a config names a file in
FreeSurfer's lookup-table format instead (``data.label_set``), the format FreeSurfer, FastSurfer,
3D Slicer and ITK-SNAP read. Each line: ``id name R G B A``; ``#`` starts a comment; id 0 (background
in every FreeSurfer table) is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scseg.errors import ConfigError


@dataclass(frozen=True)
class LabelSet:
    """Structures in file order: their label values, names and RGB colours."""

    values: list[int]
    names: list[str]
    colours: list[tuple[int, int, int]]


def parse_label_set(text: str, source: str = "<label set>") -> LabelSet:
    """Read a FreeSurfer-style lookup table.

    Raises:
        ConfigError: a line that is not ``id name R G B [A]``, a repeated id or name, no structure.

    Example:
        >>> s = parse_label_set("0 Unknown 0 0 0 0\\n17 Left-Hippocampus 220 216 20 0\\n53 Right-Hippocampus 220 216 20 0")
        >>> s.values, s.names, s.colours[0]
        ([17, 53], ['Left-Hippocampus', 'Right-Hippocampus'], (220, 216, 20))
    """
    values: list[int] = []
    names: list[str] = []
    colours: list[tuple[int, int, int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            value = int(parts[0])
            rgb = tuple(int(p) for p in parts[2:5])
        except (ValueError, IndexError):
            value, rgb = -1, ()
        if len(parts) not in (5, 6) or value < 0 or len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ConfigError(
                f"{source} line {number}: expected 'id name R G B [A]' (FreeSurfer lookup-table format, "
                f"integers, colours 0-255), got {raw.strip()!r}"
            )
        if value == 0:
            continue  # background
        if value in values or parts[1] in names:
            raise ConfigError(f"{source} line {number}: id {value} or name {parts[1]} is listed twice")
        values.append(value)
        names.append(parts[1])
        colours.append(rgb)  # type: ignore[arg-type]
    if not values:
        raise ConfigError(f"{source}: no structure listed (lines of 'id name R G B A')")
    return LabelSet(values, names, colours)


def read_label_set(path: Path) -> LabelSet:
    """:func:`parse_label_set` of a file.

    Raises:
        ConfigError: the file cannot be read, or is not a lookup table.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ConfigError(f"data.label_set: cannot read {path} ({err.strerror or err})") from None
    return parse_label_set(text, f"data.label_set {path}")
