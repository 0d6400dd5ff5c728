"""Residual U-Net whose stages are SE-ResNet units (in the spirit of nnU-Net's ResEnc U-Net)."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.blocks import Convolution
from torch import nn

from scseg.nn.blocks.norms import norm_spec
from scseg.nn.blocks.residual_se import SEResidualBlock
from scseg.nn.nets.encoder_decoder import SEEncoderDecoder
from scseg.nn.nets.layers import SE_POSITIONS, SEPlacement


class ResUNet(SEEncoderDecoder):
    """U-Net whose every stage is ``blocks_per_stage`` SE-ResNet units (:class:`SEResidualBlock`).

    The skeleton is the U-Net's (a 3x3 stem convolution, 2x max-pooling, transposed-conv up-sampling to the skip's exact
    size, skip concatenation, 1x1 head); each encoder stage, the bottleneck and each decoder stage
    is a stack of residual units, ``basic`` or ``bottleneck``. The SE block lives *inside* each unit
    where ``se_integration`` says (SE-Nets' standard, PRE, POST, Identity or 3x3), so the design
    space of Hu et al. (TPAMI 2020) can be compared in segmentation; ``se_positions`` chooses the
    stages that get SE. nnU-Net's ResEnc U-Net (Isensee et al. 2024) uses strided convolutions and
    plain decoder stages; here the decoder is residual too, so SE sits in the same places as in
    scseg's other networks.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background; outputs logits.
        features: the stage widths (the last is the bottleneck). Default:
            ``base_features * (1, 2, 4, 8, 16)``.
        base_features: first-stage width when ``features`` is not given.
        blocks_per_stage: residual units per stage.
        block: ``basic`` or ``bottleneck``.
        se: ``none``, ``cse``, ``sse``, ``scse`` or ``pe`` (3D).
        se_integration: ``standard``, ``pre``, ``post``, ``identity`` or ``3x3``.
        se_reduction, se_aggregation, se_squeeze, se_gate, se_sse_init, se_positions: see
            :class:`~scseg.nn.nets.unet.UNet`.
        norm: ``batch`` or ``instance``.

    Example:
        >>> import torch
        >>> net = ResUNet(2, 1, 3, base_features=8, se="scse", se_integration="pre")
        >>> net(torch.randn(2, 1, 33, 40)).shape
        torch.Size([2, 3, 33, 40])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: Sequence[int] | None = None,
        base_features: int = 16,
        blocks_per_stage: int = 2,
        block: str = "basic",
        se: str = "scse",
        se_integration: str = "standard",
        se_reduction: int = 2,
        se_aggregation: str = "max",
        se_positions: Sequence[str] | None = None,
        se_squeeze: str = "avg",
        se_gate: str = "sigmoid",
        se_sse_init: str = "default",
        norm: str = "instance",
    ) -> None:
        if blocks_per_stage < 1:
            raise ValueError(f"ResUNet: blocks_per_stage must be at least 1, got {blocks_per_stage}.")
        feats = tuple(features) if features is not None else tuple(base_features * 2**i for i in range(5))
        # validated like every network's SE options; the blocks below hold the SE modules
        placement = SEPlacement.from_args(
            se, se_reduction, se_aggregation, se_positions, se_squeeze, se_gate, se_sse_init
        )

        stem_built = False

        def stage(cin: int, cout: int, position: str) -> nn.Module:
            nonlocal stem_built
            kind = placement.kind if position in placement.positions else "none"
            layers: list[nn.Module] = []
            if not stem_built:  # the first stage opens with a stem conv, so that no SE block (e.g.
                stem_built = True  # SE-PRE) has to recalibrate the raw image channels
                layers.append(
                    Convolution(
                        spatial_dims,
                        cin,
                        cout,
                        kernel_size=3,
                        norm=norm_spec(norm),
                        act=("relu", {"inplace": True}),
                        bias=False,
                    )
                )
                cin = cout
            return nn.Sequential(
                *layers,
                *[
                    SEResidualBlock(
                        spatial_dims,
                        cin if i == 0 else cout,
                        cout,
                        block=block,
                        se=kind,
                        integration=se_integration,
                        norm=norm,
                        reduction=se_reduction,
                        aggregation=se_aggregation,
                        squeeze=se_squeeze,
                        gate=se_gate,
                        sse_init=se_sse_init,
                    )
                    for i in range(blocks_per_stage)
                ],
            )

        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            feats,
            stage,
            upsample="transposed",
            se=SEPlacement("none", positions=SE_POSITIONS),  # no SE after the stages: it is inside
        )
        self.se_integration = se_integration
