"""SD-Net with squeeze & excitation blocks."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.blocks import Convolution

from scseg.nn.nets.encoder_decoder import SEEncoderDecoder
from scseg.nn.nets.layers import SEPlacement, norm_spec


class SDNet(SEEncoderDecoder):
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
        se, se_reduction, se_aggregation, se_positions: see :class:`~scseg.nn.nets.unet.UNet`.
        norm: ``batch`` or ``instance``.
        dropout: dropout probability after each convolution.

    Example:
        >>> import torch
        >>> net = SDNet(2, in_channels=1, out_channels=4, features=16, se="cse")
        >>> net(torch.randn(2, 1, 33, 45)).shape
        torch.Size([2, 4, 33, 45])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: int = 64,
        depth: int = 4,
        kernel_size: int | None = None,
        se: str = "scse",
        se_reduction: int = 2,
        se_aggregation: str = "max",
        se_positions: Sequence[str] | None = None,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        k = kernel_size if kernel_size is not None else (7 if spatial_dims == 2 else 3)
        norm_arg = norm_spec(norm)

        def conv_block(cin: int, cout: int) -> Convolution:
            return Convolution(
                spatial_dims,
                cin,
                cout,
                kernel_size=k,
                act=("relu", {"inplace": True}),
                norm=norm_arg,
                dropout=dropout or None,
                bias=False,  # the norm right after it cancels a bias
            )

        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            [features] * (depth + 1),
            conv_block,
            upsample="unpool",
            se=SEPlacement.from_args(se, se_reduction, se_aggregation, se_positions),
        )
        self.kernel_size = k
