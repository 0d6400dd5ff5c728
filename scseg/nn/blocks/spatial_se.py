"""Spatial squeeze & excitation (sSE)."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from torch import nn

from scseg.nn.blocks._checks import check_input, check_spatial_dims

SSE_INITS = ("default", "open")
OPEN_GATE_BIAS = 4.0  # sigmoid(4) = 0.982: every gate starts open


def spatial_logits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The 1x1 convolution of ``x`` (N, C, *spatial) to one map (N, 1, *spatial), before the sigmoid.

    Its parameters are applied as one batched matrix product over the flattened voxels: for a single
    output channel this is ~8x faster than Conv3d forward+backward on CPU, and an explicit bmm saves
    only a view of x for backward (matmul's broadcasting and einsum save a copy). Channels-last or
    strided inputs are flattened by a copy.
    """
    n, channels = x.shape[:2]
    squeezed = torch.baddbmm(
        bias.view(1, 1, 1), weight.reshape(1, 1, channels).expand(n, 1, channels), x.flatten(2)
    )
    return squeezed.view(n, 1, *x.shape[2:])


class SpatialSE(nn.Module):
    r"""Spatial squeeze & excitation (sSE), Roy, Navab & Wachinger (MICCAI 2018).

    A 1x1 convolution squeezes the channels to one map, a sigmoid turns it into a gate per voxel, and
    every voxel (all its channels alike) is rescaled by its gate:

    .. math::
        g_v = \sigma\!\left(w^\top x_{:, v} + b\right), \qquad \hat{x}_{c, v} = g_v\, x_{c, v}

    The gate is constant over channels at each voxel and lies in (0, 1). One code path for 1D/2D/3D
    (the 1x1 convolution comes from MONAI's ``Conv`` factory).

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        channels: number of input (and output) channels C.
        init: ``"default"``: PyTorch's initialisation of the 1x1 convolution, as in the paper;
            ``"open"``: weight 0 and bias +4, so every gate starts at 0.98 and the block starts as
            (almost) the identity. With a high learning rate the default can close gates for good:
            a gate near 0 passes almost no gradient to its voxel's features or to itself, so those
            voxels stay dark (docs/results.md, "The sSE collapse": the 2D DenseNet at AdamW 3e-3).

    Example:
        >>> import torch
        >>> sse = SpatialSE(spatial_dims=2, channels=8)
        >>> sse(torch.randn(1, 8, 33, 35)).shape
        torch.Size([1, 8, 33, 35])
    """

    def __init__(self, spatial_dims: int, channels: int, init: str = "default") -> None:
        super().__init__()
        check_spatial_dims("SpatialSE", spatial_dims)
        if channels < 1:
            raise ValueError(f"SpatialSE: channels must be a positive integer, got {channels}.")
        if init not in SSE_INITS:
            raise ValueError(f"SpatialSE: init must be one of {SSE_INITS}, got {init!r}.")
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.init = init
        self.conv = Conv[Conv.CONV, spatial_dims](channels, 1, kernel_size=1)
        if init == "open":
            nn.init.zeros_(self.conv.weight)
            nn.init.constant_(self.conv.bias, OPEN_GATE_BIAS)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial gate :math:`g_v`, shaped (N, 1, *spatial) so that it broadcasts against ``x``."""
        check_input("SpatialSE", x, self.spatial_dims, self.channels)
        return torch.sigmoid(spatial_logits(x, self.conv.weight, self.conv.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
