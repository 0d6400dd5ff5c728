"""A left-right flip that swaps the labels of left / right structure pairs with the image, and the
check that refuses to mirror structures that look lateral but have no partner to swap with."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.transforms import Flip, MapTransform, RandomizableTransform

from scseg.data.annotation import ANNOTATED_KEY
from scseg.errors import ConfigError
from scseg.labels.hemispheres import swap_table
from scseg.labels.laterality import unpaired_lateral

if TYPE_CHECKING:
    from scseg.config.schema import Config


def flip_axes(config: Config) -> list[int]:
    """The sample axes that ``augmentation.flip_axes`` names (each flipped with ``flip_prob``)."""
    aug = config.augmentation
    if aug.flip_axes == "lr":
        return [] if config.lr_axis is None else [config.lr_axis]
    return list(aug.flip_axes) if aug.flip_axes is not None else list(range(config.spatial_dims))


def mirrors_left_right(config: Config) -> bool:
    """Whether training flips may mirror left and right: a flip of the left-right axis, or any flip
    when the orientation is kept as stored (the left-right axis could be any of them)."""
    aug = config.augmentation
    axes = flip_axes(config) if aug.enabled and aug.flip_prob > 0 else []
    if not axes:
        return False
    if config.lr_axis is not None:
        return config.lr_axis in axes
    return not any(c in "LR" for c in (config.preprocessing.orientation or "").upper())


def check_lr_mirroring(config: Config) -> None:
    """Refuse a config that mirrors left and right while structures that look lateral are unpaired.

    A mirrored left parotid looks exactly like a right one; unless its label is swapped with a
    partner, the flip teaches the model that both sides are the same structure (issue 48: right
    parotid Dice 0.002 after a mirrored training).

    Raises:
        ConfigError: naming the unpaired structures and the two ways out.
    """
    if not mirrors_left_right(config):
        return
    names = config.data.structure_names
    pairs = [(names[left - 1], names[right - 1]) for left, right in config.data.lr_classes]
    unpaired = unpaired_lateral(names, pairs)
    if not unpaired:
        return
    shown = ", ".join(repr(n) for n in unpaired[:8]) + (
        f" and {len(unpaired) - 8} more" if len(unpaired) > 8 else ""
    )
    raise ConfigError(
        f"augmentation: training mirrors left and right (flip_axes {config.augmentation.flip_axes or 'all'}, "
        f"flip_prob {config.augmentation.flip_prob:g}), but {shown} look lateral and have no left / right "
        "partner to swap with, so a mirrored sample would teach the wrong side. Either pair them: "
        "data.lr_pairs: auto pairs names that differ only in the side (Left-X / Right-X, X_L / X_R, "
        "LeftX / RightX), or list them as [[left, right], ...]; or turn mirroring off: "
        "augmentation.flip_prob: 0, or flip_axes without the left-right axis."
    )


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
        if ANNOTATED_KEY in d:  # which classes the case annotated: swapped with the labels
            d[ANNOTATED_KEY] = np.asarray(d[ANNOTATED_KEY])[self.table.numpy()]
        label = d[self.label_key]
        swapped = self.table.to(label.device)[torch.as_tensor(label).long()]
        if isinstance(label, torch.Tensor):
            label.copy_(swapped.to(label.dtype))  # in place: keeps a MetaTensor's meta data
        else:
            d[self.label_key] = np.asarray(swapped).astype(label.dtype)
        return d
