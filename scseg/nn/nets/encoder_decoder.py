"""The skeleton all scseg networks share: encoder, bottleneck, decoder, each block followed by SE."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from monai.networks.layers.factories import Conv, Pool
from torch import nn
from torch.nn.modules.instancenorm import _InstanceNorm

from scseg.nn.nets.layers import SEPlacement, check_net_input, check_spatial_size, max_unpool

BlockFactory = Callable[[int, int, str], nn.Module]  # (in, out, position) -> block


class SEEncoderDecoder(nn.Module):
    """Encoder-decoder with skip connections and an SE block after every block (Roy et al. 2018/2019).

    Layout (``depth`` = number of encoder stages):

    - encoder stage i: ``block(in, f_i)`` -> SE -> kept as skip -> 2x max-pool;
    - bottleneck: ``block(f_{depth-1}, f_depth)`` -> SE;
    - decoder stage i: up-sample to the skip's exact size (transposed conv, or max-unpool with the
      stored indices) -> concatenate with the skip -> ``block(., f_i)`` -> SE;
    - 1x1 convolution to ``out_channels`` logits.

    Subclasses pick the block and the up-sampling; this class owns SE placement and sizes, so the
    three architectures behave alike for odd input sizes, 2D and 3D.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes (background included); the output is logits.
        features: widths ``f_0 .. f_depth`` (the last one is the bottleneck).
        block: ``block(in_channels, out_channels, position) -> nn.Module``, the architecture's basic
            block; ``position`` (``encoder``, ``bottleneck``, ``decoder``) lets a block hold its own
            SE block (the residual U-Net's SE integrations).
        upsample: ``"transposed"`` (U-Net) or ``"unpool"`` (SD-Net, QuickNAT).
        se: where and which SE blocks go.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: Sequence[int],
        block: BlockFactory,
        upsample: str,
        se: SEPlacement,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"{type(self).__name__}: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if upsample not in ("transposed", "unpool"):
            raise ValueError(f"upsample must be 'transposed' or 'unpool', got {upsample!r}.")
        if len(features) < 2:
            raise ValueError(f"features needs at least two widths (one stage + bottleneck), got {features}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.features = tuple(int(f) for f in features)
        self.depth = len(features) - 1
        self.upsample = upsample
        self.se_placement = se
        f = self.features

        self.encoders = nn.ModuleList()
        self.encoder_se = nn.ModuleList()
        width = in_channels
        for i in range(self.depth):
            self.encoders.append(block(width, f[i], "encoder"))
            self.encoder_se.append(se.make("encoder", spatial_dims, f[i]))
            width = f[i]
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2, return_indices=upsample == "unpool")
        self.bottleneck = block(width, f[-1], "bottleneck")
        self.bottleneck_se = se.make("bottleneck", spatial_dims, f[-1])

        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.decoder_se = nn.ModuleList()
        for i in range(self.depth):
            if upsample == "transposed":
                self.upsamplers.append(
                    Conv[Conv.CONVTRANS, spatial_dims](f[i + 1], f[i], kernel_size=2, stride=2)
                )
                up_width = f[i]
            else:
                self.upsamplers.append(nn.Identity())  # unpooling has no weights
                up_width = f[i + 1]
            self.decoders.append(block(up_width + f[i], f[i], "decoder"))
            self.decoder_se.append(se.make("decoder", spatial_dims, f[i]))
        self.head = Conv[Conv.CONV, spatial_dims](f[0], out_channels, kernel_size=1)
        self.uses_instance_norm = any(isinstance(m, _InstanceNorm) for m in self.modules())

    def check_input_size(self, spatial_shape: Sequence[int]) -> None:
        """Raise ValueError if inputs of this spatial shape cannot pass the network (too small for
        its poolings); configs call it with their patch size before any training starts."""
        check_spatial_size(type(self).__name__, spatial_shape, self.depth, self.uses_instance_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_net_input(
            type(self).__name__, x, self.spatial_dims, self.in_channels, self.depth, self.uses_instance_norm
        )
        skips: list[torch.Tensor] = []
        indices: list[torch.Tensor] = []
        h = x
        for encoder, se in zip(self.encoders, self.encoder_se, strict=True):
            h = se(encoder(h))
            skips.append(h)
            if self.upsample == "unpool":
                h, idx = self.pool(h)
                indices.append(idx)
            else:
                h = self.pool(h)
        h = self.bottleneck_se(self.bottleneck(h))
        for i in reversed(range(self.depth)):
            skip = skips[i]
            if self.upsample == "unpool":
                up = max_unpool(h, indices[i], skip.shape[2:])
            else:
                up = self.upsamplers[i](h, output_size=skip.shape[2:])
            h = self.decoder_se[i](self.decoders[i](torch.cat([skip, up], dim=1)))
        return self.head(h)


class UnpoolingSENet(SEEncoderDecoder):
    """Base of SD-Net and DenseNet: one width everywhere, max-pool indices and unpooling.

    Subclasses set :attr:`default_kernel_size` (per spatial dims) and implement :meth:`make_block`.
    """

    default_kernel_size: ClassVar[dict[int, int]] = {2: 3, 3: 3}

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
        se_squeeze: str = "avg",
        se_gate: str = "sigmoid",
        se_sse_init: str = "default",
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        k = kernel_size if kernel_size is not None else self.default_kernel_size.get(spatial_dims, 3)

        def block(cin: int, cout: int, position: str) -> nn.Module:
            return self.make_block(spatial_dims, cin, cout, k, norm, dropout)

        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            [features] * (depth + 1),
            block,
            upsample="unpool",
            se=SEPlacement.from_args(
                se, se_reduction, se_aggregation, se_positions, se_squeeze, se_gate, se_sse_init
            ),
        )
        self.kernel_size = k

    @staticmethod
    def make_block(
        spatial_dims: int, cin: int, cout: int, kernel_size: int, norm: str, dropout: float
    ) -> nn.Module:
        raise NotImplementedError
