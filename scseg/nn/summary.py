"""Parameter counts and SE overhead for every architecture x dims x SE kind (``scseg models``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from scseg.nn.blocks import SE_KINDS
from scseg.nn.registry import available_models, create_model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class ModelSize:
    """One row of the model table."""

    name: str
    spatial_dims: int
    se: str
    parameters: int
    overhead_percent: float  # relative to the same architecture with se="none"


def model_sizes(in_channels: int = 1, out_channels: int = 3, aggregation: str = "max") -> list[ModelSize]:
    """Sizes of each default architecture, in 2D and 3D, for every SE kind (``pe`` in 3D only)."""
    rows: list[ModelSize] = []
    for name in available_models():
        for dims in (2, 3):
            base = count_parameters(create_model(name, dims, in_channels, out_channels, se="none"))
            for kind in SE_KINDS:
                if kind == "pe" and dims != 3:
                    continue
                n = count_parameters(
                    create_model(name, dims, in_channels, out_channels, se=kind, se_aggregation=aggregation)
                )
                rows.append(ModelSize(name, dims, kind, n, 100.0 * (n - base) / base))
    return rows
