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
- with two or more architectures, an ``all (N)`` row per SE kind: the architectures' paired
  changes averaged per subject and seed, the interval over those pairs (the same subjects recur in
  every architecture's cells, so their changes are not independent draws); only the pairs that
  every architecture has finished count, so a partly run study's row still means all N.

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


def _paired_changes(rows: list[dict], base_rows: list[dict]) -> tuple[dict, dict]:
    """A cell group's paired changes against ``none``: (case, seed) -> change of the case's mean
    Dice, and (case, seed, structure) -> (size tercile, change of that structure's Dice)."""
    pairs, base = _pairs(rows), _pairs(base_rows)
    tercile_of = size_terciles(base_rows)
    per_case, per_structure = {}, {}
    for k in sorted(set(pairs) & set(base)):
        per_case[k] = _case_mean(pairs[k]) - _case_mean(base[k])
        for structure, dice in pairs[k].items():
            ref = base[k].get(structure)
            if structure in tercile_of and dice is not None and ref is not None:
                per_structure[(*k, structure)] = (tercile_of[structure], dice - ref)
    return per_case, per_structure


def _tercile_cells(per_structure: dict) -> str:
    by_tercile = {t: [d for tercile, d in per_structure.values() if tercile == t] for t in TERCILES}
    return " | ".join(_signed_interval(by_tercile[t]) for t in TERCILES)


def _across_architectures(changes: dict[str, tuple[dict, dict]]) -> tuple[dict, dict]:
    """The architectures' paired changes averaged per (case, seed) and per (case, seed, structure),
    over the pairs that every architecture has. The same validation subjects recur in every
    architecture's cells (the split depends on the seed only), so the interval is then taken over
    subjects x seeds, not over subjects x seeds x architectures as if those were independent. A pair
    some architecture lacks (its cell is not run yet) is left out rather than averaged over fewer
    architectures, so the row always means all of them."""
    per_case, per_structure = defaultdict(list), defaultdict(list)
    for case_changes, structure_changes in changes.values():
        for k, d in case_changes.items():
            per_case[k].append(d)
        for k, (tercile, d) in structure_changes.items():
            per_structure[k].append((tercile, d))
    everyone = len(changes)
    return (
        {k: float(np.mean(v)) for k, v in per_case.items() if len(v) == everyone},
        {
            k: (v[0][0], float(np.mean([d for _, d in v])))
            for k, v in per_structure.items()
            if len(v) == everyone
        },
    )


def study_markdown(rows: list[dict], header: str) -> str:
    """The study's tables (see the module docstring), one section per dimensionality.

    A study of two or more architectures gets, for each SE kind (and swept option) that every
    architecture has once, an ``all (N)`` row: the N architectures' paired changes averaged per
    validation subject and seed that all N have, with the interval over those pairs. A swept option
    pools by its key (``train.max_epochs``), so architectures with their own values (``unet:816``)
    pool into one row.
    """
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
        pooled: dict[tuple[str, str], dict[str, list[tuple[dict, dict]]]] = defaultdict(dict)
        for key in keys:
            _, arch, se, variant = key
            pairs = _pairs(groups[key])
            seeds = sorted({r.get("seed") or 0 for r in groups[key]})
            means = [_case_mean(p) for p in pairs.values()]
            delta = "-"
            if se != "none" or variant:
                changes = _paired_changes(groups[key], groups.get((dims, arch, "none", ""), []))
                delta = _signed_interval(list(changes[0].values()))
                tercile_lines.append(f"| {arch} | {se} | {variant or '-'} | {_tercile_cells(changes[1])} |")
                option = (se, variant.split("=")[0])
                pooled[option].setdefault(arch, []).append(changes)
            minutes = [r["train_minutes"] for r in groups[key] if r.get("train_minutes") is not None]
            lines.append(
                f"| {arch} | {se} | {variant or '-'} | {len(seeds)} | {len(means)} | {_interval(means)} | {delta}"
                f" | {f'{np.median(minutes):.1f}' if minutes else '-'} |"
            )
        architectures = {k[1] for k in keys}
        for (se, option), by_arch in pooled.items():
            # one group per architecture, each with pairs: an option swept over several values of one
            # architecture has no single change per architecture to average
            one_each = all(len(found) == 1 and found[0][0] for found in by_arch.values())
            if len(architectures) < 2 or set(by_arch) != architectures or not one_each:
                continue
            changes = {arch: groups_of_arch[0] for arch, groups_of_arch in by_arch.items()}
            per_case, per_structure = _across_architectures(changes)
            if not per_case:
                continue
            seeds = sorted({seed for _, seed in per_case})
            label = f"{option} (each architecture's)" if option else "-"
            lines.append(
                f"| all ({len(changes)}) | {se} | {label} | {len(seeds)} | {len(per_case)} | - "
                f"| {_signed_interval(list(per_case.values()))} | - |"
            )
            tercile_lines.append(
                f"| all ({len(changes)}) | {se} | {label} | {_tercile_cells(per_structure)} |"
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
