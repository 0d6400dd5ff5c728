"""Small pieces shared by the architectures: norm names, SE placement, unpooling, input checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scseg.nn.blocks import SCSE_AGGREGATIONS, SE_KINDS, se_block
from scseg.nn.blocks._checks import check_input
from scseg.nn.blocks.channel_se import GATES, SQUEEZES
from scseg.nn.blocks.norms import NORMS, norm_spec
from scseg.nn.blocks.spatial_se import SSE_INITS

SE_POSITIONS = ("encoder", "bottleneck", "decoder")
__all__ = [
    "NORMS",
    "SE_POSITIONS",
    "SEPlacement",
    "check_net_input",
    "check_spatial_size",
    "max_unpool",
    "norm_spec",
]


@dataclass(frozen=True)
class SEPlacement:
    """Which SE block goes where. Every call of :meth:`make` builds a new module (nothing shared).

    Args:
        kind: one of ``none``, ``cse``, ``sse``, ``scse``, ``pe``.
        reduction: bottleneck ratio of cse/scse/pe.
        aggregation: scse aggregation (``max``, ``add``, ``mul``, ``concat``).
        positions: where to insert blocks, a subset of ``encoder``, ``bottleneck``, ``decoder``.
        squeeze: cse / scse channel descriptor (``avg``, ``max``, ``avgmax``).
        gate: cse / scse excitation (``sigmoid``, ``tanh``, ``relu``).
        sse_init: sse / scse spatial gate initialisation (``default``, ``open``).
    """

    kind: str = "scse"
    reduction: int = 2
    aggregation: str = "max"
    positions: tuple[str, ...] = SE_POSITIONS
    squeeze: str = "avg"
    gate: str = "sigmoid"
    sse_init: str = "default"

    def __post_init__(self) -> None:
        if str(self.kind).lower() not in SE_KINDS:
            raise ValueError(f"se must be one of {SE_KINDS}, got {self.kind!r}.")
        if self.squeeze not in SQUEEZES or self.gate not in GATES:
            raise ValueError(
                f"se_squeeze must be one of {SQUEEZES} and se_gate one of {GATES}, got {self.squeeze!r}, {self.gate!r}."
            )
        if self.sse_init not in SSE_INITS:
            raise ValueError(f"se_sse_init must be one of {SSE_INITS}, got {self.sse_init!r}.")
        if self.aggregation not in SCSE_AGGREGATIONS:
            raise ValueError(f"se_aggregation must be one of {SCSE_AGGREGATIONS}, got {self.aggregation!r}.")
        unknown = sorted(set(self.positions) - set(SE_POSITIONS))
        if unknown:
            raise ValueError(f"se_positions may only contain {SE_POSITIONS}, got unknown {unknown}.")

    @classmethod
    def from_args(
        cls,
        se: str,
        se_reduction: int,
        se_aggregation: str,
        se_positions: Sequence[str] | str | None,
        se_squeeze: str = "avg",
        se_gate: str = "sigmoid",
        se_sse_init: str = "default",
    ) -> SEPlacement:
        if se_positions is None:
            positions: tuple[str, ...] = SE_POSITIONS
        elif isinstance(se_positions, str):
            positions = tuple(p.strip() for p in se_positions.split(",") if p.strip())
        else:
            positions = tuple(se_positions)
        return cls(
            str(se).lower(), int(se_reduction), se_aggregation, positions, se_squeeze, se_gate, se_sse_init
        )

    def make(self, position: str, spatial_dims: int, channels: int) -> nn.Module:
        if position not in self.positions:
            return nn.Identity()
        return se_block(
            self.kind,
            spatial_dims,
            channels,
            self.reduction,
            self.aggregation,
            self.squeeze,
            self.gate,
            self.sse_init,
        )


def max_unpool(x: torch.Tensor, indices: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
    """Max-unpool with kernel 2 / stride 2 back to ``output_size`` (odd sizes included).

    Passing the skip connection's size resolves the ambiguity that made the reference code crash on
    odd input sizes. MONAI has no unpooling factory, so we pick the functional by dimension.
    """
    unpool = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}[x.dim() - 2]
    return unpool(x, indices, kernel_size=2, stride=2, output_size=list(output_size))


def check_net_input(
    name: str, x: torch.Tensor, spatial_dims: int, in_channels: int, depth: int, instance_norm: bool = False
) -> None:
    """Clear errors for a wrong rank, channel count or a volume too small for ``depth`` poolings.

    With instance norm the bottleneck also needs more than one voxel (a single voxel has no variance).
    """
    check_input(name, x, spatial_dims, in_channels)
    if torch.jit.is_tracing():
        return
    check_spatial_size(name, tuple(x.shape[2:]), depth, instance_norm)


def check_spatial_size(name: str, shape: Sequence[int], depth: int, instance_norm: bool = False) -> None:
    """Raise ValueError when a spatial ``shape`` is too small for ``depth`` 2x poolings (and, with
    instance norm, when it pools down to a single voxel, which has no variance)."""
    smallest = 2**depth
    shape = tuple(int(s) for s in shape)
    if min(shape) < smallest:
        raise ValueError(
            f"{name} pools {depth} times, so every spatial size must be at least {smallest}; "
            f"got spatial shape {shape}. Pad or crop the input, or lower `depth`."
        )
    bottleneck = [s // smallest for s in shape]
    if instance_norm and math.prod(bottleneck) == 1:
        raise ValueError(
            f"{name} uses instance norm, which needs more than one voxel at the bottleneck, but spatial "
            f"shape {shape} pools down to {tuple(bottleneck)}. Make at least one spatial "
            f"size >= {2 * smallest}, or use norm='batch'."
        )
