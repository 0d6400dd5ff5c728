"""QuickNAT-style fully convolutional DenseNet with squeeze & excitation blocks."""

from __future__ import annotations

from typing import ClassVar

import torch
from monai.networks.blocks import ADN
from monai.networks.layers.factories import Conv
from torch import nn

from scseg.nn.nets.encoder_decoder import UnpoolingSENet
from scseg.nn.nets.layers import norm_spec


class DenseBlock(nn.Module):
    """QuickNAT dense block: (norm -> PReLU -> k x k conv) twice with dense concatenation, then a
    norm -> PReLU -> 1x1 compression conv down to ``out_channels`` (Roy et al., NeuroImage 2019).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        norm: str,
        dropout: float,
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        norm_arg = norm_spec(norm)

        def pre_activation(channels: int) -> ADN:
            return ADN(ordering="NA", in_channels=channels, act="prelu", norm=norm_arg, norm_dim=spatial_dims)

        pad = kernel_size // 2
        self.pre1, self.conv1 = (
            pre_activation(in_channels),
            conv(in_channels, out_channels, kernel_size, padding=pad),
        )
        grown = in_channels + out_channels
        self.pre2, self.conv2 = pre_activation(grown), conv(grown, out_channels, kernel_size, padding=pad)
        grown += out_channels
        self.pre3, self.compress = pre_activation(grown), conv(grown, out_channels, kernel_size=1)
        self.dropout = (
            ADN(ordering="D", dropout=dropout, dropout_dim=spatial_dims) if dropout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1 = self.conv1(self.pre1(x))
        o2 = self.conv2(self.pre2(torch.cat([x, o1], dim=1)))
        return self.dropout(self.compress(self.pre3(torch.cat([x, o1, o2], dim=1))))


class DenseNet(UnpoolingSENet):
    """QuickNAT-style DenseNet (Roy et al., NeuroImage 2019) with SE blocks after every dense block.

    Dense blocks (:class:`DenseBlock`) of ``features`` filters, 2x max-pooling with indices and
    max-unpooling with them (odd sizes work), skip concatenation and a 1x1 classifier.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background; outputs logits.
        features: filters in every dense block (paper: 64).
        depth: number of encoder (and decoder) stages.
        kernel_size: default 5 in 2D (paper) and 3 in 3D.
        se, se_reduction, se_aggregation, se_positions, se_squeeze, se_gate, se_sse_init: see
            :class:`~scseg.nn.nets.unet.UNet`.
        norm: ``batch`` or ``instance``.
        dropout: dropout probability after each dense block.

    Example:
        >>> import torch
        >>> net = DenseNet(2, in_channels=1, out_channels=3, features=16)
        >>> net(torch.randn(1, 1, 35, 37)).shape
        torch.Size([1, 3, 35, 37])
    """

    default_kernel_size: ClassVar[dict[int, int]] = {2: 5, 3: 3}

    @staticmethod
    def make_block(
        spatial_dims: int, cin: int, cout: int, kernel_size: int, norm: str, dropout: float
    ) -> DenseBlock:
        return DenseBlock(spatial_dims, cin, cout, kernel_size, norm, dropout)
