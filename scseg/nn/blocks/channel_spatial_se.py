"""Concurrent spatial and channel squeeze & excitation (scSE)."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from torch import nn

from scseg.nn.blocks import gate_kernels
from scseg.nn.blocks._checks import check_input, check_spatial_dims
from scseg.nn.blocks.channel_se import ChannelSE
from scseg.nn.blocks.fused_scse import fused_scse
from scseg.nn.blocks.gating import fused_gate_combination
from scseg.nn.blocks.spatial_se import SpatialSE

SCSE_AGGREGATIONS = ("add", "max", "mul", "concat")


class ChannelSpatialSE(nn.Module):
    r"""Concurrent spatial and channel squeeze & excitation (scSE), Roy, Navab & Wachinger.

    Runs cSE (:class:`ChannelSE`, submodule ``.cse``) and sSE (:class:`SpatialSE`, submodule ``.sse``)
    on the same input and aggregates the two recalibrated maps :math:`\hat{x}^{c} = g_c x` and
    :math:`\hat{x}^{s} = g_s x`:

    - ``"add"``: :math:`\hat{x}^{c} + \hat{x}^{s}`, the aggregation written in the MICCAI 2018 paper.
    - ``"max"``: :math:`\max(\hat{x}^{c}, \hat{x}^{s})` element-wise ("max-out"), what the authors'
      reference code uses and what the IEEE TMI 2019 paper found best; the default here.
    - ``"mul"``: :math:`\hat{x}^{c} \odot \hat{x}^{s}`, compared in TMI 2019.
    - ``"concat"``: concatenate both along channels, then a 1x1 convolution back to C (TMI 2019).

    ``add``, ``max`` and ``mul`` keep no full-size temporaries for backward and equal the plain
    formula: training on CPU runs the whole block as one autograd function on fused (compiled)
    kernels (:mod:`~scseg.nn.blocks.fused_scse`); elsewhere the gates are combined by a memory-lean
    autograd function (:func:`~scseg.nn.blocks.gating.fused_gate_combination`).

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        channels: number of input (and output) channels C.
        reduction: cSE bottleneck ratio r (paper: 2).
        aggregation: ``"max"`` (default), ``"add"``, ``"mul"`` or ``"concat"``.
        squeeze, gate: the cSE half's descriptor and gate (:class:`ChannelSE`); the fused CPU
            training kernels cover every gate with the average squeeze, other squeezes run the
            memory-lean combination.
        sse_init: the sSE half's initialisation, ``default`` or ``open`` (:class:`SpatialSE`).

    Example:
        >>> import torch
        >>> scse = ChannelSpatialSE(3, channels=16, aggregation="max")
        >>> scse(torch.randn(2, 16, 9, 10, 11)).shape
        torch.Size([2, 16, 9, 10, 11])
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        reduction: int = 2,
        aggregation: str = "max",
        squeeze: str = "avg",
        gate: str = "sigmoid",
        sse_init: str = "default",
    ) -> None:
        super().__init__()
        check_spatial_dims("ChannelSpatialSE", spatial_dims)
        if aggregation not in SCSE_AGGREGATIONS:
            raise ValueError(
                f"ChannelSpatialSE: aggregation must be one of {SCSE_AGGREGATIONS}, got {aggregation!r}."
            )
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.aggregation = aggregation
        self.cse = ChannelSE(spatial_dims, channels, reduction, squeeze, gate)
        self.sse = SpatialSE(spatial_dims, channels, sse_init)
        self.fuse = (
            Conv[Conv.CONV, spatial_dims](2 * channels, channels, kernel_size=1)
            if aggregation == "concat"
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("ChannelSpatialSE", x, self.spatial_dims, self.channels)
        if self.fuse is not None:
            channel_gate, spatial_gate = self.cse.gate(x), self.sse.gate(x)
            return self.fuse(torch.cat([x * channel_gate, x * spatial_gate], dim=1))
        # the fused step squeezes by the channel mean; other squeezes take the autograd path
        if (
            self.cse.squeeze == "avg"
            and torch.is_grad_enabled()
            and x.requires_grad
            and gate_kernels.wanted(x)
        ):
            # training on CPU: one autograd step on the fused kernels (scseg/nn/blocks/fused_scse.py)
            return fused_scse(x, self.cse, self.sse.conv, self.aggregation)
        channel_gate, spatial_gate = self.cse.gate(x), self.sse.gate(x)
        return fused_gate_combination(x, channel_gate, spatial_gate, self.aggregation)

    def extra_repr(self) -> str:
        return f"aggregation={self.aggregation!r}"
