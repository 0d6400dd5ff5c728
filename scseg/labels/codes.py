"""Standard codes for segmented structures: what a DICOM SEG or RT structure set says a segment is.

PACS, viewers and radiotherapy systems identify a structure by its code, not its name. One table
shipped with scseg (``segment_codes.csv``, built from the DICOM standard's coded concepts: CID 7140
Brain Structures, CID 7151 Segmentation Property Types) maps structure names to SNOMED CT (``SCT``)
or DICOM (``DCM``) codes; the laterality or position part of a name (``Left-``, ``ctx-rh-``,
``_L``, ``-Anterior``; sides read by :mod:`scseg.labels.laterality`) becomes a modifier code
(CID 244 / CID 2). A name the table does not know
gets a code in scseg's private scheme ``99SCSEG`` (the ``99`` prefix marks a private scheme in
DICOM PS3.16), which every SEG that uses it declares (:data:`PRIVATE_SCHEME`).

Training maps a model's label names to codes once and stores them in the model artefact
(``model.yaml``); ``data.label_codes`` in a config names the table entry (or an explicit
``SCHEME:VALUE:Meaning``) for a name the table cannot match, e.g. the hippocampus parts.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

from scseg.labels.laterality import parse_side

PRIVATE_SCHEME = "99SCSEG"
PRIVATE_SCHEME_NAME = "scseg structure names without a standard code"
PRIVATE_SCHEME_ORGANIZATION = "scseg"

# SNOMED CT qualifier values (pydicom.sr.codedict: CID 244 Laterality, CID 2 Anatomic Modifier)
# laterality from scseg.labels.laterality (any spelling of the side); position from a first or last word
POSITIONS = ("anterior", "posterior")
MODIFIERS = {
    "left": ("SCT", "7771000", "Left"),
    "right": ("SCT", "24028007", "Right"),
    "anterior": ("SCT", "255549009", "Anterior"),
    "posterior": ("SCT", "255551008", "Posterior"),
}
# CID 7150 Segmentation Property Categories
CATEGORIES = {
    "anatomy": ("SCT", "91723000", "Anatomical Structure"),
    "substance": ("SCT", "91720002", "Body Substance"),
}


class Code(BaseModel):
    """One coded concept (DICOM code sequence item)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: str
    value: str
    meaning: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}:{self.meaning}"


class SegmentCode(BaseModel):
    """What a segment is: category, type and an optional modifier (laterality or position)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Code
    type: Code
    modifier: Code | None = None

    @property
    def private(self) -> bool:
        return self.type.scheme == PRIVATE_SCHEME


def _key(tokens: Sequence[str]) -> str:
    return "".join(tokens)


def _tokens(name: str) -> list[str]:
    """``ctx-lh-superiorfrontal`` -> ``['lh', 'superiorfrontal']`` (lower case, no separators)."""
    tokens = [t for t in re.split(r"[^0-9a-zA-Z]+", name.lower()) if t]
    return tokens[1:] if tokens[:1] == ["ctx"] else tokens


@cache
def _table_rows() -> list[dict[str, str]]:
    text = resources.files("scseg.labels").joinpath("segment_codes.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


@cache
def code_table() -> dict[str, tuple[Code, Code]]:
    """The shipped table: normalised name -> (category, type)."""
    table: dict[str, tuple[Code, Code]] = {}
    for row in _table_rows():
        category = Code(**dict(zip(("scheme", "value", "meaning"), CATEGORIES[row["category"]], strict=True)))
        concept = Code(scheme=row["scheme"], value=row["value"], meaning=row["meaning"])
        for name in row["names"].split(";"):
            table[_key(_tokens(name))] = (category, concept)
    return table


@cache
def _tg263_table() -> dict[tuple[str, str], str]:
    """(scheme, value) -> the AAPM TG-263 primary name, for the codes that have one."""
    return {(row["scheme"], row["value"]): row["tg263"] for row in _table_rows() if row.get("tg263")}


def roi_names(names: Sequence[str], codes: Sequence[SegmentCode]) -> list[str]:
    """The names an RT structure set gives these structures: AAPM TG-263 (``Parotid_L``,
    ``Bone_Mandible``), which planning systems match on, where the code has a TG-263 name, and the
    model's own name otherwise (a position modifier, a private code, or two structures that would
    share a name).

    Read from the codes, not the names, so that ``RightParotid``, ``Right-Parotid`` and
    ``parotid_r`` all become ``Parotid_R``.

    Example:
        >>> names = ["RightParotid", "Mandible", "ctx-lh-insula", "Left-Hippocampus"]
        >>> roi_names(names, segment_codes(names))
        ['Parotid_R', 'Bone_Mandible', 'ctx-lh-insula', 'Hippocampus_L']
    """
    sides = {"Left": "_L", "Right": "_R", None: ""}
    table = _tg263_table()
    proposed = []
    for name, code in zip(names, codes, strict=True):
        base = table.get((code.type.scheme, code.type.value))
        side = code.modifier.meaning if code.modifier is not None else None
        proposed.append(base + sides[side] if base and side in sides else name)
    taken = [p for p, n in zip(proposed, names, strict=True) if p != n]
    return [n if taken.count(p) > 1 else p for p, n in zip(proposed, names, strict=True)]


def private_code(name: str) -> SegmentCode:
    """A code in :data:`PRIVATE_SCHEME` for a structure without a standard one: the value is a hash
    of the name, so the same name gets the same code in every model."""
    digest = hashlib.sha1(_key(_tokens(name)).encode()).hexdigest()[:10].upper()
    return SegmentCode(
        category=Code(**dict(zip(("scheme", "value", "meaning"), CATEGORIES["anatomy"], strict=True))),
        type=Code(scheme=PRIVATE_SCHEME, value=f"S{digest}", meaning=name[:64]),
    )


def _parse_explicit(text: str) -> Code | None:
    parts = text.split(":", 2)
    if len(parts) == 3 and all(p.strip() for p in parts):
        return Code(scheme=parts[0].strip(), value=parts[1].strip(), meaning=parts[2].strip()[:64])
    return None


def segment_code(name: str, coded_as: str | None = None) -> SegmentCode:
    """The code of a structure named ``name`` (or, when given, named ``coded_as`` in the table).

    Example:
        >>> c = segment_code("Left-Hippocampus")
        >>> str(c.type), str(c.modifier)
        ('SCT:5366008:Hippocampus', 'SCT:7771000:Left')
        >>> segment_code("ctx-rh-superiorfrontal").type.scheme
        '99SCSEG'
        >>> str(segment_code("anterior", coded_as="Hippocampus-Anterior").modifier)
        'SCT:255549009:Anterior'
    """
    explicit = _parse_explicit(coded_as) if coded_as else None
    if explicit is not None:
        category = Code(**dict(zip(("scheme", "value", "meaning"), CATEGORIES["anatomy"], strict=True)))
        return SegmentCode(category=category, type=explicit)
    tokens = _tokens(coded_as or name)
    table = code_table()
    candidates = [(tokens, None)]
    lateral = parse_side(coded_as or name)  # Left-X, ctx-lh-X, X_L, RightX, ...
    if lateral is not None and lateral.side is not None:
        candidates.append((_tokens(lateral.stem), lateral.side))
    if len(tokens) > 1 and tokens[0] in POSITIONS:
        candidates.append((tokens[1:], tokens[0]))
    if len(tokens) > 1 and tokens[-1] in POSITIONS:
        candidates.append((tokens[:-1], tokens[-1]))
    for base, modifier in candidates:
        found = table.get(_key(base))
        if found is not None:
            mod = MODIFIERS.get(modifier or "")
            return SegmentCode(
                category=found[0],
                type=found[1],
                modifier=Code(scheme=mod[0], value=mod[1], meaning=mod[2]) if mod else None,
            )
    return private_code(name)


def segment_codes(names: Sequence[str], coded_as: Mapping[str, str] | None = None) -> list[SegmentCode]:
    """:func:`segment_code` of every name (``coded_as``: ``data.label_codes``)."""
    coded_as = coded_as or {}
    return [segment_code(name, coded_as.get(name)) for name in names]
