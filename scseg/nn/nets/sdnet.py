"""SD-Net with squeeze & excitation blocks."""

from __future__ import annotations

from typing import ClassVar

from monai.networks.blocks import Convolution

from scseg.nn.nets.encoder_decoder import UnpoolingSENet
from scseg.nn.nets.layers import norm_spec


class SDNet(UnpoolingSENet):
    """SD-Net (Roy et al., "Error corrective boosting", 2017) with SE blocks after every block.

    Every encoder/decoder block is a single large-kernel convolution with norm and ReLU; pooling is
    2x max-pooling that keeps its indices, and decoding max-unpools with those indices (to the skip's
    exact size, so odd sizes work) before concatenating the skip.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background; outputs logits.
        features: filters in every block (paper: 64).
        depth: number of encoder (and decoder) stages.
        kernel_size: convolution size; default 7 in 2D (paper) and 3 in 3D (7^3 kernels are
            impractically slow and large).
        se, se_reduction, se_aggregation, se_positions, se_squeeze, se_gate, se_sse_init: see
            :class:`~scseg.nn.nets.unet.UNet`.
        norm: ``batch`` or ``instance``.
        dropout: dropout probability after each convolution.

    Example:
        >>> import torch
        >>> net = SDNet(2, in_channels=1, out_channels=4, features=16, se="cse")
        >>> net(torch.randn(2, 1, 33, 45)).shape
        torch.Size([2, 4, 33, 45])
    """

    default_kernel_size: ClassVar[dict[int, int]] = {2: 7, 3: 3}

    @staticmethod
    def make_block(
        spatial_dims: int, cin: int, cout: int, kernel_size: int, norm: str, dropout: float
    ) -> Convolution:
        return Convolution(
            spatial_dims,
            cin,
            cout,
            kernel_size=kernel_size,
            act=("relu", {"inplace": True}),
            norm=norm_spec(norm),
            dropout=dropout or None,
            bias=False,  # the norm right after it cancels a bias
        )
