"""Left / right structure pairs: flips that swap them, and the sagittal view that merges them.

A left-right flip of a brain turns the left hippocampus into something that looks exactly like a
right one; unless the labels are swapped with it, the flip teaches the wrong hemisphere. And a 2D
model on sagittal slices cannot tell the hemispheres apart at all (the mid-sagittal plane is a near
mirror), so QuickNAT and FastSurfer give it one class per pair and copy its probability back onto
both sides before the views are fused, where the coronal and axial views decide the side.

Pairs are found from names (``Left-X``/``Right-X``, ``ctx-lh-X``/``ctx-rh-X``, ``X_L``/``X_R``,
``LeftX``/``RightX``, ...: :mod:`scseg.labels.laterality`) or declared in the config (``data.lr_pairs``).
"""

from __future__ import annotations

import numpy as np
import torch

from scseg.errors import ConfigError
from scseg.labels.laterality import pair_lateral, parse_side


def pair_stem(left: str) -> str:
    """What a left structure's name says besides its side: ``Left-Hippocampus`` -> ``Hippocampus``,
    ``ctx-lh-insula`` -> ``ctx-insula`` (:func:`scseg.labels.laterality.parse_side`).

    Example:
        >>> pair_stem("Left-Hippocampus"), pair_stem("ctx-lh-insula"), pair_stem("kidney_left")
        ('Hippocampus', 'ctx-insula', 'kidney')
    """
    lateral = parse_side(left)
    return left if lateral is None else lateral.stem


def detect_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every (left, right) pair of ``names`` whose words agree apart from the side
    (:func:`scseg.labels.laterality.pair_lateral`).

    Example:
        >>> detect_pairs(["Left-Hippocampus", "Brain-Stem", "Right-Hippocampus", "Parotid_L", "Parotid_R"])
        [('Left-Hippocampus', 'Right-Hippocampus'), ('Parotid_L', 'Parotid_R')]
    """
    return pair_lateral(names).pairs


def pair_classes(names: list[str], pairs: list[tuple[str, str]] | None) -> list[tuple[int, int]]:
    """The pairs as class indices (structure ``i`` of ``names`` is class ``i + 1``; 0 is background).

    Args:
        names: the structures in class order.
        pairs: declared (left, right) names, or ``None`` to detect them from the names.

    Raises:
        ConfigError: a declared name that is not a structure, or a structure in two pairs.
    """
    pairs = detect_pairs(names) if pairs is None else pairs
    index = {name: i + 1 for i, name in enumerate(names)}
    seen: set[str] = set()
    classes = []
    for left, right in pairs:
        for name in (left, right):
            if name not in index:
                raise ConfigError(f"data.lr_pairs: {name!r} is not one of the structures (data.label_names)")
            if name in seen:
                raise ConfigError(f"data.lr_pairs: {name!r} is in two pairs")
            seen.add(name)
        classes.append((index[left], index[right]))
    return classes


def swap_table(num_classes: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Class -> class after a left-right flip: each pair swapped, everything else unchanged.

    Example:
        >>> swap_table(5, [(1, 3)]).tolist()
        [0, 3, 2, 1, 4]
    """
    table = np.arange(num_classes)
    for left, right in pairs:
        table[left], table[right] = right, left
    return table


def merged_classes(num_classes: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Class -> sagittal class: both sides of a pair become one class; classes stay in order.

    Example:
        >>> merged_classes(6, [(1, 4), (2, 5)]).tolist()   # 0 bg, 1 L-a, 2 L-b, 3 c, 4 R-a, 5 R-b
        [0, 1, 2, 3, 1, 2]
    """
    rights = {right: left for left, right in pairs}
    table = np.zeros(num_classes, dtype=np.int64)
    next_class = 0
    for c in range(num_classes):
        if c in rights:
            table[c] = table[rights[c]]
        else:
            table[c] = next_class
            next_class += 1
    return table


def unmerge_probabilities(merged: torch.Tensor, table: np.ndarray | list[int], dim: int = 1) -> torch.Tensor:
    """Sagittal probabilities back onto every class: both sides of a pair get the pair's probability
    (as FastSurfer does; the other views decide the side when the views are fused).

    Args:
        merged: probabilities over the merged classes along ``dim``.
        table: :func:`merged_classes`.
    """
    return torch.index_select(merged, dim, torch.as_tensor(table, device=merged.device))
