"""Whole-volume prediction: MONAI sliding windows in 3D, slice-wise (as windows) in 2D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.inferers import SlidingWindowInferer
from torch import nn

from scseg.config.schema import SLICE_AXIS_INDEX, Config


class SliceWise(nn.Module):
    """Run a 2D network on 3D windows that are one slice thick along ``axis`` (0, 1 or 2)."""

    def __init__(self, net: nn.Module, axis: int) -> None:
        super().__init__()
        self.net, self.axis = net, axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.squeeze(self.axis + 2)).unsqueeze(self.axis + 2)


def make_inferer(
    config: Config, slice_axis: str | None = None, sw_device: torch.device | None = None
) -> tuple[SlidingWindowInferer, int | None]:
    """The sliding-window inferer for a config, and the slice axis index for 2D models (else None).

    2D models predict every slice: windows are one voxel thick along the slice axis and overlap
    only in-plane, so MONAI's inferer does the tiling, padding and Gaussian blending for both.
    Windows run on ``sw_device`` while the blended output stays on the input's device, so a GPU
    only ever holds ``sw_batch_size`` windows.
    """
    roi = config.roi_size
    overlap: float | list[float] = config.inference.overlap
    axis = None
    if config.spatial_dims == 2:
        axis = SLICE_AXIS_INDEX[slice_axis or config.mode.slice_axis]
        roi = list(roi)
        roi.insert(axis, 1)
        overlap = [config.inference.overlap] * 3
        overlap[axis] = 0.0
    inferer = SlidingWindowInferer(
        roi_size=roi,
        sw_batch_size=config.inference.sw_batch_size,
        overlap=overlap,
        mode=config.inference.blend,
        sw_device=sw_device,
        progress=False,
    )
    return inferer, axis


def softmax_(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 in place: a whole-volume softmax would otherwise double the peak memory."""
    logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()
    return logits.div_(logits.sum(dim=1, keepdim=True))


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    image: torch.Tensor,
    config: Config,
    slice_axis: str | None = None,
    views: Sequence[str] | None = None,
    sw_device: torch.device | None = None,
) -> torch.Tensor:
    """Softmax probabilities (N, K, *spatial) for a preprocessed batch ``image`` (N, C, *spatial).

    Args:
        model: the network (in eval mode).
        image: the preprocessed batch, on the device where the whole-volume output may live.
        config: the run's config (roi, overlap, blending, 2D/3D).
        slice_axis: 2D models only: the slicing axis (default: the training axis).
        views: 2D models only: several slicing axes whose probabilities are averaged
            (QuickNAT-style view aggregation); overrides ``slice_axis``.
        sw_device: where the windows run (default: the image's device).
    """
    axes: list[str | None] = list(views) if views else [slice_axis]
    total: torch.Tensor | None = None
    for view in axes:
        inferer, axis = make_inferer(config, view, sw_device)
        network = SliceWise(model, axis) if axis is not None else model
        probs = softmax_(inferer(image, network).float())
        total = probs if total is None else total.add_(probs)
        del probs
    assert total is not None
    return total.div_(len(axes)) if len(axes) > 1 else total
