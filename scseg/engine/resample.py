"""Map class probabilities from the network's grid back onto the input's voxel grid, in slabs.

The preprocessed volume is a ``MetaTensor`` whose affine tracks every geometric step (reorientation,
resampling, foreground crop), so the inverse of the whole chain is one affine map between voxel
indices: input index -> world -> network-grid index. We resample through it slab by slab instead of
calling MONAI's ``Invertd``: its inverse resamples the whole input grid at once, building a
(X, Y, Z, 3) float sampling grid per class, which measured 6 GB for one class of a 512 x 512 x 600
CT. Here the input grid only ever holds the label map (and the probabilities if asked for); the
result equals MONAI's inverse (``tests/engine/test_resample.py``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform


def _integer_mapping(mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(axis of the source per target axis, signed step, offset) if ``mapping`` only permutes, flips
    and shifts whole voxels (no resampling), else None."""
    linear, offset = np.rint(mapping[:3, :3]), np.rint(mapping[:3, 3])
    if np.abs(mapping[:3, :3] - linear).max() > 1e-4 or np.abs(mapping[:3, 3] - offset).max() > 1e-4:
        return None
    if not (np.abs(linear).sum(axis=0) == 1).all() or not (np.abs(linear).sum(axis=1) == 1).all():
        return None
    return linear, offset


def _slab_indices(shape: Sequence[int], start: int, stop: int) -> np.ndarray:
    """Homogeneous voxel indices (4, N) of the target slab ``[:, :, start:stop]``."""
    i, j, k = np.meshgrid(
        np.arange(shape[0], dtype=np.float64),
        np.arange(shape[1], dtype=np.float64),
        np.arange(start, stop, dtype=np.float64),
        indexing="ij",
    )
    return np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])


def _sample_slab(
    probs: torch.Tensor, mapping: np.ndarray, shape: Sequence[int], start: int, stop: int
) -> torch.Tensor:
    """Trilinear samples (K, X, Y, stop - start) of ``probs`` at the target slab's voxel centres."""
    source = (mapping @ _slab_indices(shape, start, stop))[:3]  # source voxel indices
    size = np.array(probs.shape[1:], dtype=np.float64)
    # grid_sample, align_corners=True: -1 and +1 are the centres of the first and last voxels
    normalised = 2.0 * source / np.maximum(size - 1, 1)[:, None] - 1.0
    grid = torch.from_numpy(normalised[::-1].T.astype(np.float32)).reshape(
        1, shape[0], shape[1], stop - start, 3
    )
    sampled = F.grid_sample(probs[None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled[0]


def _argmax_classes(slab: torch.Tensor) -> torch.Tensor:
    """``slab.argmax(dim=0)`` as a running maximum over classes: contiguous passes instead of a
    reduction across the (large) class stride, ~10x faster on CPU. Ties keep the lower class."""
    best = slab[0].clone()
    index = torch.zeros(slab.shape[1:], dtype=torch.int64)
    for k in range(1, slab.shape[0]):
        wins = slab[k] > best
        index[wins] = k
        torch.maximum(best, slab[k], out=best)
    return index


def _renormalise_(probs: torch.Tensor) -> torch.Tensor:
    """Probabilities sum to 1 again: outside the network's grid (the cropped-away region) every class
    samples 0 and the voxel is background; next to it interpolation mixes in those zeros."""
    total = probs.sum(dim=0)
    outside = total <= 1e-6
    probs[0][outside] = 1.0
    total[outside] = 1.0
    return probs.div_(total)


@torch.no_grad()
def probabilities_to_labels(
    probs: torch.Tensor,
    source_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: Sequence[int],
    label_values: Sequence[int],
    keep_probabilities: bool = False,
    slab_voxels: int = 4_000_000,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Label map (and optionally probabilities) on the target grid from probabilities on the source grid.

    Args:
        probs: (K, *source_shape) class probabilities, background first.
        source_affine: voxel-to-world affine of ``probs`` (the preprocessed ``MetaTensor``'s).
        target_affine: voxel-to-world affine of the input image.
        target_shape: the input image's spatial shape.
        label_values: the value written for classes 1..K-1.
        keep_probabilities: also return the (X, Y, Z, K) probabilities on the target grid.
        slab_voxels: target voxels resampled at a time (bounds the temporaries).
    """
    shape = tuple(int(s) for s in target_shape[:3])
    mapping = np.linalg.solve(
        np.asarray(source_affine, dtype=np.float64), np.asarray(target_affine, dtype=np.float64)
    )
    values = torch.as_tensor([0, *label_values], dtype=torch.int64)
    dtype = np.uint8 if max(label_values) < 256 else np.uint16
    labels = np.zeros(shape, dtype=dtype)
    out_probs = np.zeros((*shape, probs.shape[0]), dtype=np.float32) if keep_probabilities else None
    probs = probs.float().cpu()
    exact = _integer_mapping(mapping)
    step = max(1, slab_voxels // (shape[0] * shape[1]))
    if exact is not None and out_probs is None:
        # whole voxels are only moved: the argmax commutes with that, so take it once on the network
        # grid and move one class index per voxel instead of K probabilities
        classes = _argmax_classes(probs)[None].float()
        for start in range(0, shape[2], step):
            stop = min(shape[2], start + step)
            slab = _copy_slab(classes, exact, shape, start, stop, outside=0.0)
            labels[:, :, start:stop] = values[slab[0].long()].numpy().astype(dtype)
        return labels, None
    for start in range(0, shape[2], step):
        stop = min(shape[2], start + step)
        if exact is not None:
            slab = _copy_slab(probs, exact, shape, start, stop)
        else:
            slab = _renormalise_(_sample_slab(probs, mapping, shape, start, stop))
        labels[:, :, start:stop] = values[_argmax_classes(slab)].numpy().astype(dtype)
        if out_probs is not None:
            out_probs[:, :, start:stop] = slab.permute(1, 2, 3, 0).numpy()
    return labels, out_probs


def _copy_slab(
    probs: torch.Tensor,
    exact: tuple[np.ndarray, np.ndarray],
    shape: Sequence[int],
    start: int,
    stop: int,
    outside: float = 1.0,
) -> torch.Tensor:
    """The slab by indexing alone (the grids share voxel centres); outside the source: background
    (channel 0 = ``outside``, the others 0: probability 1 of background, or class index 0)."""
    linear, offset = exact
    slab = torch.zeros((probs.shape[0], shape[0], shape[1], stop - start))
    slab[0] = outside
    axes = [np.arange(shape[0]), np.arange(shape[1]), np.arange(start, stop)]
    src_index, dst_index = [None] * 3, [None] * 3
    for t in range(3):
        s = int(np.abs(linear[:, t]).argmax())  # source axis that target axis t runs along
        index = linear[s, t] * axes[t] + offset[s]
        valid = (index >= 0) & (index < probs.shape[1 + s])
        src_index[s] = torch.from_numpy(index[valid].astype(np.int64))
        dst_index[t] = torch.from_numpy(np.flatnonzero(valid))
    if any(len(i) == 0 for i in src_index):
        return slab
    picked = probs[:, src_index[0][:, None, None], src_index[1][None, :, None], src_index[2][None, None, :]]
    # ``picked`` is ordered by source axes; move them into target-axis order
    order = [int(np.abs(linear[:, t]).argmax()) for t in range(3)]
    picked = picked.permute(0, *[1 + o for o in order])
    slab[:, dst_index[0][:, None, None], dst_index[1][None, :, None], dst_index[2][None, None, :]] = picked
    return slab


class ToInputGridd(MapTransform):
    """Probabilities on the network's grid -> the label map on the loaded image's own grid.

    The post-processing step of exported MONAI bundles: the same :func:`probabilities_to_labels`
    that ``scseg predict`` runs, reading the two grids from the image ``MetaTensor`` that MONAI's
    ``LoadImaged`` and the preprocessing produced (its ``affine`` is the network grid's, its
    ``original_affine`` and ``spatial_shape`` the file's).

    Args:
        keys: the probabilities' key (``pred``), replaced by a (1, X, Y, Z) label map.
        image_key: the preprocessed image's key.
        label_values: the value written for each foreground class 1..K-1.
    """

    def __init__(self, keys: KeysCollection, label_values: Sequence[int], image_key: str = "image") -> None:
        super().__init__(keys)
        self.label_values, self.image_key = [int(v) for v in label_values], image_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = d[self.image_key]
        if not isinstance(image, MetaTensor) or "original_affine" not in image.meta:
            raise ValueError(
                f"{self.image_key!r} must be a MetaTensor loaded by LoadImaged (original_affine)"
            )
        target_affine = np.asarray(image.meta["original_affine"], dtype=np.float64)
        target_shape = [int(s) for s in image.meta["spatial_shape"]][:3]
        for key in self.key_iterator(d):
            labels, _ = probabilities_to_labels(
                d[key], image.affine.numpy(), target_affine, target_shape, self.label_values
            )
            meta = {k: v for k, v in image.meta.items() if k not in ("affine", "original_affine")}
            d[key] = MetaTensor(
                torch.from_numpy(labels)[None], affine=torch.as_tensor(target_affine), meta=meta
            )
        return d
