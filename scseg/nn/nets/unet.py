"""U-Net with squeeze & excitation blocks."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.blocks import Convolution
from torch import nn

from scseg.nn.nets.encoder_decoder import SEEncoderDecoder
from scseg.nn.nets.layers import SEPlacement, norm_spec


class UNet(SEEncoderDecoder):
    """U-Net (Ronneberger et al. 2015) with cSE / sSE / scSE after every block (Roy et al. 2018).

    Four encoder stages of two 3x3 conv-norm-ReLU, 2x max-pooling, a bottleneck, 2x transposed-conv
    up-sampling to the skip's exact size (odd sizes work) and skip concatenation. Convolutions come
    from MONAI's :class:`~monai.networks.blocks.Convolution`.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background; outputs logits.
        features: the 5 widths (4 stages + bottleneck). Default: ``base_features * (1, 2, 4, 8, 16)``.
        base_features: first-stage width when ``features`` is not given.
        se: ``none``, ``cse``, ``sse``, ``scse`` or ``pe`` (3D).
        se_reduction: cSE bottleneck ratio.
        se_aggregation: scSE aggregation (``max``, ``add``, ``mul``, ``concat``).
        se_positions: subset of ``encoder``, ``bottleneck``, ``decoder`` (default: all).
        se_squeeze: cSE descriptor, ``avg`` (default), ``max`` or ``avgmax`` (see
            :class:`~scseg.nn.blocks.ChannelSE`).
        se_gate: cSE excitation, ``sigmoid`` (default), ``tanh`` or ``relu``.
        se_sse_init: sSE gate initialisation, ``default`` (PyTorch's, as the paper) or ``open``
            (every gate starts at 0.98; see :class:`~scseg.nn.blocks.SpatialSE`).
        norm: ``batch`` or ``instance``.
        dropout: dropout probability inside every conv unit.

    Example:
        >>> import torch
        >>> net = UNet(3, in_channels=1, out_channels=3, base_features=8, se="scse")
        >>> net(torch.randn(2, 1, 17, 19, 21)).shape  # batch norm (the default) trains on batches > 1
        torch.Size([2, 3, 17, 19, 21])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: Sequence[int] | None = None,
        base_features: int = 16,
        se: str = "scse",
        se_reduction: int = 2,
        se_aggregation: str = "max",
        se_positions: Sequence[str] | None = None,
        se_squeeze: str = "avg",
        se_gate: str = "sigmoid",
        se_sse_init: str = "default",
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        feats = tuple(features) if features is not None else tuple(base_features * 2**i for i in range(5))
        norm_arg = norm_spec(norm)

        def double_conv(cin: int, cout: int, position: str) -> nn.Module:
            def unit(a: int, b: int) -> Convolution:
                return Convolution(
                    spatial_dims,
                    a,
                    b,
                    kernel_size=3,
                    act=("relu", {"inplace": True}),
                    norm=norm_arg,
                    dropout=dropout or None,
                    bias=False,  # the norm right after it cancels a bias
                )

            return nn.Sequential(unit(cin, cout), unit(cout, cout))

        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            feats,
            double_conv,
            upsample="transposed",
            se=SEPlacement.from_args(
                se, se_reduction, se_aggregation, se_positions, se_squeeze, se_gate, se_sse_init
            ),
        )
