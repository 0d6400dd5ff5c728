"""Squeeze & excitation blocks: cSE, sSE, scSE, Project & Excite and SE-ResNet units, one code path
for 1D/2D/3D."""

from scseg.nn.blocks.channel_se import GATES, SQUEEZES, ChannelSE
from scseg.nn.blocks.channel_spatial_se import SCSE_AGGREGATIONS, ChannelSpatialSE
from scseg.nn.blocks.factory import SE_KINDS, se_block
from scseg.nn.blocks.gating import combine_gates, fused_gate_combination
from scseg.nn.blocks.project_excite import ProjectExcite
from scseg.nn.blocks.residual_se import INTEGRATIONS, RESIDUAL_BLOCKS, SEResidualBlock
from scseg.nn.blocks.spatial_se import SpatialSE

__all__ = [
    "GATES",
    "INTEGRATIONS",
    "RESIDUAL_BLOCKS",
    "SCSE_AGGREGATIONS",
    "SE_KINDS",
    "SQUEEZES",
    "ChannelSE",
    "ChannelSpatialSE",
    "ProjectExcite",
    "SEResidualBlock",
    "SpatialSE",
    "combine_gates",
    "fused_gate_combination",
    "se_block",
]
