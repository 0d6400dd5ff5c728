"""Whole-volume prediction: MONAI sliding windows in 3D, slice-wise (as windows) in 2D."""

from __future__ import annotations

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


def make_inferer(config: Config, slice_axis: str | None = None) -> tuple[SlidingWindowInferer, int | None]:
    """The sliding-window inferer for a config, and the slice axis index for 2D models (else None).

    2D models predict every slice: windows are one voxel thick along the slice axis and overlap
    only in-plane, so MONAI's inferer does the tiling, padding and Gaussian blending for both.
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
        progress=False,
    )
    return inferer, axis


@torch.no_grad()
def predict_probabilities(
    model: nn.Module, image: torch.Tensor, config: Config, slice_axis: str | None = None
) -> torch.Tensor:
    """Softmax probabilities (N, K, *spatial) for a preprocessed batch ``image`` (N, C, *spatial)."""
    inferer, axis = make_inferer(config, slice_axis)
    network = SliceWise(model, axis) if axis is not None else model
    logits = inferer(image, network)
    return torch.softmax(logits.float(), dim=1)
