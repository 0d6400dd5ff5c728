"""Per-structure uncertainty from the disagreement of several passes (TTA, ensemble, MC dropout).

Two scores per structure, as in Bayesian QuickNAT (Roy et al., NeuroImage 2019), computed from the
passes' label maps:

- ``uncertainty``: 1 - IoU of the passes' masks (voxels every pass calls the structure, over voxels
  any pass does). 0 when every pass agrees, towards 1 when they share little.
- ``volume_cv``: the coefficient of variation of the structure's volume over the passes.

A structure no pass finds has no score (NaN): agreeing that it is absent says nothing about whether
it should be there (a missed structure would otherwise look certain). The QC check catches those
by name instead: structures present in every validation case that a prediction does not find.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StructureUncertainty:
    structure: str
    label_value: int
    uncertainty: float
    volume_cv: float


def _counts(values: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(values.reshape(-1).long(), minlength=num_classes)[:num_classes].double()


def structure_uncertainty(
    pass_labels: Sequence[torch.Tensor], names: Sequence[str], values: Sequence[int]
) -> list[StructureUncertainty]:
    """The scores of every structure (class ``i + 1`` is ``names[i]``) from the passes' class maps.

    Example:
        >>> a = torch.tensor([0, 1, 1, 1, 2, 0]); b = torch.tensor([0, 1, 1, 0, 2, 0])
        >>> [(s.structure, round(s.uncertainty, 3), round(s.volume_cv, 3))
        ...  for s in structure_uncertainty([a, b], ["x", "y", "z"], [1, 2, 3])]
        [('x', 0.333, 0.2), ('y', 0.0, 0.0), ('z', nan, nan)]
    """
    num_classes = len(names) + 1
    stacked = torch.stack([p.reshape(-1) for p in pass_labels]).long()
    ordered = stacked.sort(dim=0).values
    # a voxel holds class k in every pass iff its smallest and largest class are both k
    agreed = ordered[0] == ordered[-1]
    intersection = _counts(ordered[0][agreed], num_classes)
    # union: each voxel counts once for every distinct class among its passes
    union = _counts(ordered[0], num_classes)
    for p in range(1, len(ordered)):
        new = ordered[p] != ordered[p - 1]
        union += _counts(ordered[p][new], num_classes)
    volumes = torch.stack([_counts(p, num_classes) for p in stacked])  # (passes, K)
    mean, std = volumes.mean(dim=0), volumes.std(dim=0, unbiased=False)
    scores = []
    for k, (name, value) in enumerate(zip(names, values, strict=True), start=1):
        if union[k] == 0:  # found by no pass
            scores.append(StructureUncertainty(name, int(value), math.nan, math.nan))
            continue
        iou = float(intersection[k] / union[k])
        scores.append(StructureUncertainty(name, int(value), 1.0 - iou, float(std[k] / mean[k])))
    return scores


def voxel_disagreement(pass_labels: Sequence[torch.Tensor], fused: torch.Tensor) -> torch.Tensor:
    """The share of passes whose class differs from the fused label map, per voxel (0 where all agree)."""
    disagree = torch.zeros(fused.shape, dtype=torch.float32)
    for labels in pass_labels:
        disagree += (labels.long() != fused.long()).float()
    return disagree.div_(len(pass_labels))


def worst_uncertainty(scores: Sequence[StructureUncertainty]) -> float | None:
    """The largest score of the structures found (``None`` when none was found)."""
    found = [s.uncertainty for s in scores if not math.isnan(s.uncertainty)]
    return max(found, default=None)
