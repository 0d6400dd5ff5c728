"""Which side a structure's name says it is on, and which names are the two sides of one structure.

Real datasets spell the side in many ways: ``Left-Hippocampus`` and ``ctx-lh-insula`` (FreeSurfer),
``Parotid_L`` (AAPM TG-263, what radiotherapy datasets use), ``kidney_left`` and ``rib_left_1``
(TotalSegmentator), ``LeftParotid`` (OpenKBP), ``lt_parotid``, ``Rt Lung``, ``lung_R``. One parser
reads them all, and every part of scseg that needs a side uses it: the planner and the training
flips (which must swap the two sides of a pair), the DICOM SEG laterality modifiers and the label
tables' left + right sums.

A name is split into words at separators (anything but letters and digits) and at camel-case
boundaries (``RightParotid`` -> ``Right``, ``Parotid``; ``LParotid`` -> ``L``, ``Parotid``), never
between a letter and a digit (``vertebrae_L1`` is a lumbar vertebra, not a left one). A word that is
``left``/``right``, ``l``/``r``, ``lt``/``rt`` or ``lh``/``rh`` (any case) is a side word; so is a
word that starts with ``left``/``right`` glued to at least three more letters (``RIGHTPAROTID``).
A side word between separators outranks one that is a camel-case part of a word (``Right LOrG``:
the L of the abbreviation LOrG says no side).
Two names pair when their words agree, in order and case-insensitively, apart from the side word
and the side is opposite: ``Parotid_L`` pairs with ``Parotid_R`` and ``RightParotid`` with
``Left_Parotid``, but ``Lt_Parotid`` not with ``Parotid_R`` (the side stands elsewhere), and a stem
that three names share pairs none of them. A name whose side words disagree is lateral but has no
side (it cannot pair).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Side = Literal["left", "right"]

_SIDE_WORDS: dict[str, Side] = {
    "left": "left", "l": "left", "lt": "left", "lh": "left",
    "right": "right", "r": "right", "rt": "right", "rh": "right",
}  # fmt: skip
# a side glued to the rest of the word, all in one case (RIGHTPAROTID, leftkidney): only the full
# word, and with at least three more letters, so that "cleft", "bright" or "upright" stay unsided
_GLUED = re.compile(r"^(left|right)([a-z]{3,})$|^([a-z]{3,})(left|right)$", re.IGNORECASE)
# words: runs of letters and digits, cut at lower -> Upper and at UPPER -> Upper lower (camel case)
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+\d*|[A-Z]+\d*|\d+[A-Za-z]*")
_RUN = re.compile(r"[0-9A-Za-z]+")


@dataclass(frozen=True)
class Lateral:
    """What a lateral name says.

    Attributes:
        name: the name as given.
        side: ``"left"`` or ``"right"``; ``None`` when its side words disagree.
        stem: the name without its side word, for people (``Left-Hippocampus`` -> ``Hippocampus``).
        key: the words apart from the side, lower case, ``*`` where the side stood: two names pair
            when their keys are equal and their sides opposite.
    """

    name: str
    side: Side | None
    stem: str
    key: str


def _words(name: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, word, whole) of every word of ``name`` (see the module docstring); ``whole``: the
    word is a whole run between separators, not a camel-case part of one."""
    words = []
    for run in _RUN.finditer(name):
        parts = list(_WORD.finditer(run.group()))
        for word in parts:
            words.append(
                (run.start() + word.start(), run.start() + word.end(), word.group(), len(parts) == 1)
            )
    return words


def _side_of(word: str) -> tuple[Side, str] | None:
    """The side a word names and what else it says (``""``, or the glued rest)."""
    side = _SIDE_WORDS.get(word.lower())
    if side is not None:
        return side, ""
    glued = _GLUED.match(word)
    if glued:
        side_word = (glued.group(1) or glued.group(4)).lower()
        return _SIDE_WORDS[side_word], (glued.group(2) or glued.group(3))
    return None


def _key_word(word: str, side: tuple[Side, str] | None) -> str:
    """A word of a pairing key: ``*`` for the side, the glued rest on the side it stood."""
    if side is None:
        return word.lower()
    rest = side[1].lower()
    if not rest:
        return "*"
    return f"* {rest}" if word.lower().endswith(rest) else f"{rest} *"


def _without(name: str, start: int, end: int, rest: str) -> str:
    """``name`` with ``name[start:end]`` replaced by ``rest``, and one separator beside it dropped."""
    if rest:
        return name[:start] + rest + name[end:]
    after = re.match(r"[^0-9A-Za-z]+", name[end:])
    before = re.search(r"[^0-9A-Za-z]+$", name[:start])
    if after and (start == 0 or before):  # "Left-X", "ctx-lh-X": the separator after it goes
        end += after.end()
    elif before:  # "X_left": the separator before it goes
        start = before.start()
    return name[:start] + name[end:]


def parse_side(name: str) -> Lateral | None:
    """The side ``name`` is on, or ``None`` when it names no side.

    Example:
        >>> [parse_side(n).side for n in ("Left-Hippocampus", "Parotid_R", "lt_parotid", "RightParotid")]
        ['left', 'right', 'left', 'right']
        >>> parse_side("ctx-lh-insula").stem, parse_side("rib_left_1").stem, parse_side("Rt Lung").stem
        ('ctx-insula', 'rib_1', 'Lung')
        >>> parse_side("vertebrae_L1"), parse_side("Lateral-Ventricle"), parse_side("Brain-Stem")
        (None, None, None)
    """
    words = _words(name)
    sides = [_side_of(w) for _, _, w, _ in words]
    # a side word between separators outranks a camel-case part: in Neuromorphometrics' "Right LOrG
    # lateral orbital gyrus" the side is "Right", and the L of LOrG is part of an abbreviation
    if any(found is not None and words[i][3] for i, found in enumerate(sides)):
        sides = [found if words[i][3] else None for i, found in enumerate(sides)]
    sided = [(i, found) for i, found in enumerate(sides) if found is not None]
    if not sided:
        return None
    side_set = {found[0] for _, found in sided}
    key = " ".join(_key_word(w, sides[i]) for i, (_, _, w, _) in enumerate(words))
    stem = name
    for i, (_, rest) in reversed(sided):
        start, end, _, _ = words[i]
        stem = _without(stem, start, end, rest)
    return Lateral(name=name, side=side_set.pop() if len(side_set) == 1 else None, stem=stem, key=key)


@dataclass(frozen=True)
class Pairing:
    """The left / right pairs of a set of names, and the lateral names that found no partner.

    Attributes:
        pairs: (left name, right name), in the order of the left names.
        unpaired: names that say a side (or conflicting sides) but have no partner, in name order.
    """

    pairs: list[tuple[str, str]]
    unpaired: list[str]


def pair_lateral(names: Sequence[str]) -> Pairing:
    """Pair every left name with the right name whose words agree apart from the side.

    Example:
        >>> p = pair_lateral(["RightParotid", "LeftParotid", "Mandible", "lung_middle_lobe_right"])
        >>> p.pairs, p.unpaired
        ([('LeftParotid', 'RightParotid')], ['lung_middle_lobe_right'])
    """
    lateral = [found for found in map(parse_side, names) if found is not None]
    by_key: dict[str, list[Lateral]] = defaultdict(list)
    for found in lateral:
        by_key[found.key].append(found)
    partner: dict[str, str] = {}
    for group in by_key.values():
        lefts = [g for g in group if g.side == "left"]
        rights = [g for g in group if g.side == "right"]
        if len(group) == 2 and len(lefts) == 1 and len(rights) == 1:
            partner[lefts[0].name] = rights[0].name
    paired = set(partner) | set(partner.values())
    return Pairing(
        pairs=[(name, partner[name]) for name in names if name in partner],
        unpaired=[found.name for found in lateral if found.name not in paired],
    )


def unpaired_lateral(names: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The names that say a side but are in none of ``pairs`` (declared or found).

    Example:
        >>> unpaired_lateral(["Parotid_L", "Parotid_R", "Eye_L"], [("Parotid_L", "Parotid_R")])
        ['Eye_L']
    """
    paired = {name for pair in pairs for name in pair}
    return [name for name in names if name not in paired and parse_side(name) is not None]
