"""One entry point for every recalibration block: ``se_block(kind, spatial_dims, channels, ...)``."""

from __future__ import annotations

from torch import nn

from scseg.nn.blocks.channel_se import ChannelSE
from scseg.nn.blocks.channel_spatial_se import SCSE_AGGREGATIONS, ChannelSpatialSE
from scseg.nn.blocks.project_excite import ProjectExcite
from scseg.nn.blocks.spatial_se import SpatialSE

SE_KINDS = ("none", "cse", "sse", "scse", "pe")


def se_block(
    kind: str,
    spatial_dims: int,
    channels: int,
    reduction: int = 2,
    aggregation: str = "max",
    squeeze: str = "avg",
    gate: str = "sigmoid",
    sse_init: str = "default",
) -> nn.Module:
    """Build a squeeze & excitation block by name.

    Args:
        kind: ``"none"`` (identity), ``"cse"``, ``"sse"``, ``"scse"`` or ``"pe"`` (3D only).
        spatial_dims: number of spatial dimensions.
        channels: number of channels of the features it recalibrates.
        reduction: bottleneck ratio for cse / scse / pe.
        aggregation: scse aggregation, one of ``add``, ``max``, ``mul``, ``concat``.
        squeeze: cse / scse channel descriptor, ``avg``, ``max`` or ``avgmax``.
        gate: cse / scse excitation, ``sigmoid``, ``tanh`` or ``relu``.
        sse_init: sse / scse spatial gate initialisation, ``default`` or ``open`` (gates start at
            0.98, see :class:`SpatialSE`).

    Returns:
        A fresh module (never shared between call sites).

    Raises:
        ValueError: unknown ``kind``, ``pe`` with ``spatial_dims != 3``, or a bad reduction.

    Example:
        >>> se_block("scse", 2, 32, aggregation="add").aggregation
        'add'
    """
    key = str(kind).lower()
    if key == "none":
        return nn.Identity()
    if key == "cse":
        return ChannelSE(spatial_dims, channels, reduction, squeeze, gate)
    if key == "sse":
        return SpatialSE(spatial_dims, channels, sse_init)
    if key == "scse":
        return ChannelSpatialSE(spatial_dims, channels, reduction, aggregation, squeeze, gate, sse_init)
    if key == "pe":
        if (squeeze, gate, sse_init) != ("avg", "sigmoid", "default"):
            raise ValueError(
                "se_squeeze / se_gate / se_sse_init apply to cse, sse and scse, not to pe (Project & Excite)."
            )
        if spatial_dims != 3:
            raise ValueError(
                f"se='pe' (Project & Excite) is defined for 3D volumes only, got spatial_dims={spatial_dims}. "
                "Use 'cse', 'sse' or 'scse' for 2D models."
            )
        return ProjectExcite(channels, reduction)
    raise ValueError(f"unknown SE kind {kind!r}; expected one of {SE_KINDS}.")


__all__ = ["SCSE_AGGREGATIONS", "SE_KINDS", "se_block"]
