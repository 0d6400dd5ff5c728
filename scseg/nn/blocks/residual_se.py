"""SE-ResNet residual units in 2D and 3D, with the SE integration strategies of SE-Nets."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn

from scseg.nn.blocks._checks import check_spatial_dims
from scseg.nn.blocks.factory import se_block
from scseg.nn.blocks.norms import norm_spec

INTEGRATIONS = ("standard", "pre", "post", "identity", "3x3")
RESIDUAL_BLOCKS = ("basic", "bottleneck")
BOTTLENECK_EXPANSION = 4  # ResNet's: the bottleneck's inner width is a quarter of its output


class SEResidualBlock(nn.Module):
    r"""A ResNet residual unit with a squeeze & excitation block where SE-Nets put it.

    ``y = ReLU(F(x) + S(x))`` with the residual branch :math:`F` (``basic``: two 3x3 conv-norm,
    ReLU between; ``bottleneck``: 1x1 -> 3x3 -> 1x1 conv-norm at a quarter of the width) and the
    shortcut :math:`S` (identity, or a 1x1 conv-norm when the width or stride changes). The SE block
    (:func:`~scseg.nn.blocks.se_block`, any kind) goes, by ``integration`` (Hu et al., SE-Nets,
    TPAMI 2020, Fig. 5 and Table 14):

    - ``standard``: on the residual branch before the sum, :math:`\mathrm{ReLU}(SE(F(x)) + S(x))`;
    - ``pre``: before the block, on the residual branch's input, :math:`\mathrm{ReLU}(F(SE(x)) + S(x))`;
    - ``post``: after the sum (and its ReLU), :math:`SE(\mathrm{ReLU}(F(x) + S(x)))`;
    - ``identity``: on the identity branch, :math:`\mathrm{ReLU}(F(x) + SE(S(x)))`;
    - ``3x3``: inside the residual branch, right after its (first) 3x3 conv-norm-ReLU.

    Args:
        spatial_dims: 2 or 3 (1 works too).
        in_channels: input channels.
        out_channels: output channels.
        block: ``basic`` or ``bottleneck``.
        se: SE kind (``none``, ``cse``, ``sse``, ``scse``, ``pe``).
        integration: one of :data:`INTEGRATIONS`.
        stride: stride of the first 3x3 convolution (and of the projection shortcut).
        norm: ``batch`` or ``instance``.
        reduction, aggregation, squeeze, gate, sse_init: the SE block's options
            (:func:`~scseg.nn.blocks.se_block`).

    Example:
        >>> import torch
        >>> unit = SEResidualBlock(3, 8, 16, block="bottleneck", se="cse", integration="identity")
        >>> unit(torch.randn(2, 8, 9, 10, 11)).shape
        torch.Size([2, 16, 9, 10, 11])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        block: str = "basic",
        se: str = "scse",
        integration: str = "standard",
        stride: int = 1,
        norm: str = "instance",
        reduction: int = 2,
        aggregation: str = "max",
        squeeze: str = "avg",
        gate: str = "sigmoid",
        sse_init: str = "default",
    ) -> None:
        super().__init__()
        check_spatial_dims("SEResidualBlock", spatial_dims)
        if block not in RESIDUAL_BLOCKS:
            raise ValueError(f"SEResidualBlock: block must be one of {RESIDUAL_BLOCKS}, got {block!r}.")
        if integration not in INTEGRATIONS:
            raise ValueError(
                f"SEResidualBlock: integration must be one of {INTEGRATIONS}, got {integration!r}."
            )
        self.integration = integration
        norm_arg = norm_spec(norm)

        def unit(a: int, b: int, kernel: int, strides: int = 1, act: bool = True) -> Convolution:
            return Convolution(
                spatial_dims, a, b, kernel_size=kernel, strides=strides, norm=norm_arg,
                act=("relu", {"inplace": True}) if act else None, bias=False,
            )  # fmt: skip

        def recalibration(channels: int) -> nn.Module:
            return se_block(se, spatial_dims, channels, reduction, aggregation, squeeze, gate, sse_init)

        if block == "basic":
            layers = [
                unit(in_channels, out_channels, 3, stride),
                unit(out_channels, out_channels, 3, act=False),
            ]
            after_3x3, width_3x3 = 1, out_channels
        else:
            mid = max(1, out_channels // BOTTLENECK_EXPANSION)
            layers = [
                unit(in_channels, mid, 1),
                unit(mid, mid, 3, stride),
                unit(mid, out_channels, 1, act=False),
            ]
            after_3x3, width_3x3 = 2, mid
        if integration == "3x3":
            layers.insert(after_3x3, recalibration(width_3x3))
        self.residual = nn.Sequential(*layers)
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels and stride == 1
            else unit(in_channels, out_channels, 1, stride, act=False)
        )
        se_channels = {
            "standard": out_channels,
            "pre": in_channels,
            "post": out_channels,
            "identity": out_channels,
        }
        self.se = recalibration(se_channels[integration]) if integration in se_channels else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.integration
        residual = self.residual(self.se(x) if mode == "pre" else x)
        if mode == "standard":
            residual = self.se(residual)
        shortcut = self.shortcut(x)
        if mode == "identity":
            shortcut = self.se(shortcut)
        y = self.act(residual + shortcut)
        return self.se(y) if mode == "post" else y

    def extra_repr(self) -> str:
        return f"integration={self.integration!r}"
