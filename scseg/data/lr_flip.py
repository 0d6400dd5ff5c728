"""A left-right flip that swaps the labels of left / right structure pairs with the image."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Flip, MapTransform, RandomizableTransform

from scseg.labels.hemispheres import swap_table


class RandFlipLRd(RandomizableTransform, MapTransform):
    """With probability ``prob``, flip every key along the left-right axis and swap paired classes.

    MONAI's ``RandFlipd`` flips the voxels only, so a flipped left hippocampus keeps the label
    "left" while it now lies and looks like a right one: without the swap, flips teach the wrong
    hemisphere.

    Args:
        keys: image and label keys (flipped together).
        spatial_axis: the left-right axis of the samples (0-based, without the channel).
        num_classes: classes including background.
        pairs: (left class, right class) pairs, see :func:`scseg.labels.hemispheres.pair_classes`.
        label_key: the key whose class values are swapped.
        prob: probability of flipping a sample.

    Example:
        >>> label = torch.zeros(1, 4, 2); label[0, 0] = 1; label[0, 3] = 2   # class 1 left, 2 right
        >>> flip = RandFlipLRd(["label"], 0, num_classes=3, pairs=[(1, 2)], prob=1.0)
        >>> flip({"label": label})["label"][0, :, 0].tolist()   # mirrored, and still 1 left / 2 right
        [1.0, 0.0, 0.0, 2.0]
    """

    def __init__(
        self,
        keys: Sequence[str],
        spatial_axis: int,
        num_classes: int,
        pairs: list[tuple[int, int]],
        label_key: str = "label",
        prob: float = 0.5,
    ) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.flip = Flip(spatial_axis=spatial_axis)
        self.label_key = label_key
        self.table = torch.as_tensor(swap_table(num_classes, pairs))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            d[key] = self.flip(d[key])
        label = d[self.label_key]
        swapped = self.table.to(label.device)[torch.as_tensor(label).long()]
        if isinstance(label, torch.Tensor):
            label.copy_(swapped.to(label.dtype))  # in place: keeps a MetaTensor's meta data
        else:
            d[self.label_key] = np.asarray(swapped).astype(label.dtype)
        return d
