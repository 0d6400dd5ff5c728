"""Tables of a multi-seed SE study (``scseg ablate --seeds ...``), from its per-cell JSON results.

Every statement is paired and over subjects x seeds, as the SE papers' claims need:

- mean Dice per cell group (architecture x SE kind [x swept option]) with a 95 % confidence
  interval over the (validation subject, seed) pairs (normal approximation);
- the paired change against the same architecture without SE (``none``), pairing each subject
  and seed: mean and 95 % interval;
- that change by structure size: the structures' mean reference volume (over the ``none`` cells)
  cut into small / medium / large terciles, where Roy et al. found SE's gains largest;
- each group's median training minutes per cell, for equal-wall-clock readings (the median: a
  cell that shared the machine with other work is slower without being a different cell).

:func:`splice_tables` puts the tables into a write-up (``docs/results.md``) between two markers, so
the write-up's numbers are generated from the JSON while its prose stays hand-written.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scseg.errors import ConfigError
from scseg.io.atomic import write_text_atomic

Z95 = 1.96
TERCILES = ("small", "medium", "large")


def group_key(row: dict) -> tuple:
    return (row["dims"], row["arch"], row["se"], row.get("variant") or "")


def _interval(values: Sequence[float]) -> str:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return "-"
    half = Z95 * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.nan
    return (
        f"{v.mean():.3f} [{v.mean() - half:.3f}, {v.mean() + half:.3f}]" if len(v) > 1 else f"{v.mean():.3f}"
    )


def _signed_interval(values: Sequence[float]) -> str:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) < 2:
        return "-" if len(v) == 0 else f"{v.mean():+.3f}"
    half = Z95 * v.std(ddof=1) / math.sqrt(len(v))
    return f"{v.mean():+.3f} ± {half:.3f}"


def _pairs(rows: list[dict]) -> dict[tuple[str, int], dict]:
    """(case, seed) -> that case's structure Dice, over a group's cells (one per seed)."""
    out = {}
    for row in rows:
        for case, per_structure in row.get("case_structure_dice", {}).items():
            out[(case, row.get("seed") or 0)] = per_structure
    return out


def _case_mean(per_structure: dict[str, float]) -> float:
    found = [d for d in per_structure.values() if d is not None and not math.isnan(d)]
    return float(np.mean(found)) if found else math.nan


def size_terciles(none_rows: list[dict]) -> dict[str, str]:
    """Structure -> ``small`` / ``medium`` / ``large`` by its mean reference volume."""
    volumes: dict[str, list[float]] = defaultdict(list)
    for row in none_rows:
        for structure, ml in row.get("structure_volume_ml", {}).items():
            volumes[structure].append(ml)
    ranked = sorted(volumes, key=lambda s: float(np.mean(volumes[s])))
    return {s: TERCILES[min(2, 3 * i // max(1, len(ranked)))] for i, s in enumerate(ranked)}


def study_markdown(rows: list[dict], header: str) -> str:
    """The study's tables (see the module docstring), one section per dimensionality."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[group_key(row)].append(row)
    lines = [header, ""]
    for dims in sorted({k[0] for k in groups}, reverse=True):
        keys = [k for k in groups if k[0] == dims]
        lines += [f"## {dims}D: mean Dice [95 % CI] over validation subjects x seeds", ""]
        lines += [
            "| architecture | SE | variant | seeds | subjects x seeds | mean Dice | Δ vs none (paired, ± 95 %)"
            " | train min / cell (median) |"
        ]
        lines += ["|---|---|---|---|---|---|---|---|"]
        tercile_lines = []
        for key in keys:
            _, arch, se, variant = key
            pairs = _pairs(groups[key])
            seeds = sorted({r.get("seed") or 0 for r in groups[key]})
            means = [_case_mean(p) for p in pairs.values()]
            base_rows = groups.get((dims, arch, "none", ""), [])
            base = _pairs(base_rows)
            shared = sorted(set(pairs) & set(base))
            delta = "-"
            if se != "none" or variant:
                delta = _signed_interval([_case_mean(pairs[k]) - _case_mean(base[k]) for k in shared])
                tercile_of = size_terciles(base_rows)
                by_tercile = {t: [] for t in TERCILES}
                for k in shared:
                    for structure, dice in pairs[k].items():
                        ref = base[k].get(structure)
                        if structure in tercile_of and dice is not None and ref is not None:
                            by_tercile[tercile_of[structure]].append(dice - ref)
                tercile_lines.append(
                    f"| {arch} | {se} | {variant or '-'} | "
                    + " | ".join(_signed_interval(by_tercile[t]) for t in TERCILES)
                    + " |"
                )
            minutes = [r["train_minutes"] for r in groups[key] if r.get("train_minutes") is not None]
            lines.append(
                f"| {arch} | {se} | {variant or '-'} | {len(seeds)} | {len(means)} | {_interval(means)} | {delta}"
                f" | {f'{np.median(minutes):.1f}' if minutes else '-'} |"
            )
        if tercile_lines:
            lines += [
                "",
                f"## {dims}D: Dice change vs none by structure size (paired over subjects x seeds x structures)",
                "",
            ]
            lines += ["| architecture | SE | variant | " + " | ".join(f"{t} third" for t in TERCILES) + " |"]
            lines += ["|---|---|---|---|---|---|", *tercile_lines]
        lines.append("")
    return "\n".join(lines)


def table_markers(key: str) -> tuple[str, str]:
    """The lines that delimit study ``key``'s generated tables in a Markdown write-up."""
    return f"<!-- scseg ablate tables: {key} -->", f"<!-- scseg ablate tables end: {key} -->"


def splice_tables(document: Path, tables: str, key: str) -> None:
    """Replace what lies between study ``key``'s markers in ``document`` with ``tables``: its title
    dropped, its headings moved to one level below the write-up's section that holds the markers
    (``### Sweep`` -> ``#### 2D: ...``), so the tables nest in the outline.

    Raises:
        ConfigError: the document or one of its two marker lines is missing.
    """
    document = Path(document)
    begin, end = table_markers(key)
    if not document.is_file():
        raise ConfigError(f"--into {document}: no such file; expected a Markdown write-up with the lines "
                          f"{begin!r} and {end!r} around the place for the tables")  # fmt: skip
    lines = document.read_text(encoding="utf-8").split("\n")
    try:
        first = lines.index(begin)
        last = lines.index(end, first)
    except ValueError:
        raise ConfigError(
            f"--into {document}: the lines {begin!r} and {end!r} (in that order) mark where study {key!r}'s "
            "tables go; add them to the document"
        ) from None
    body = tables.split("\n")
    if body and body[0].startswith("# "):
        body = body[1:]
    levels = [_heading_level(line) for line in body]
    top = min((n for n in levels if n), default=0)
    shift = _section_level(lines[:first]) + 1 - top  # the tables' top headings: one below the section's
    body = ["#" * min(6, n + shift) + line[n:] if n else line for line, n in zip(body, levels, strict=True)]
    while body and not body[0].strip():
        body = body[1:]
    while body and not body[-1].strip():
        body = body[:-1]
    write_text_atomic(document, "\n".join([*lines[: first + 1], "", *body, "", *lines[last:]]))


def _heading_level(line: str) -> int:
    """1-6 for a Markdown ATX heading (``## Title``), else 0."""
    hashes = len(line) - len(line.lstrip("#"))
    return hashes if 1 <= hashes <= 6 and line[hashes : hashes + 1] == " " else 0


def _section_level(lines: list[str]) -> int:
    """The level of the last heading in ``lines``, outside code fences (a ``# comment`` in a bash
    block is not a heading); 1 when there is none."""
    level, fenced = 1, False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and _heading_level(line):
            level = _heading_level(line)
    return level
