"""Argument and input checks shared by the SE blocks, so every block fails the same clear way."""

from __future__ import annotations

import torch

_AXES = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def check_spatial_dims(block: str, spatial_dims: int, allowed: tuple[int, ...] = (1, 2, 3)) -> None:
    """Raise ValueError unless ``spatial_dims`` is one of ``allowed``."""
    if spatial_dims not in allowed:
        raise ValueError(f"{block}: spatial_dims must be one of {allowed}, got {spatial_dims!r}.")


def check_reduction(block: str, channels: int, reduction: int) -> int:
    """Return the bottleneck width ``channels // reduction``, or raise a ValueError if it is 0."""
    if channels < 1:
        raise ValueError(f"{block}: channels must be a positive integer, got {channels}.")
    if reduction < 1 or channels // reduction == 0:
        raise ValueError(
            f"{block}: channels // reduction must be at least 1, got channels={channels}, "
            f"reduction={reduction}. Use a reduction factor of at most {channels}."
        )
    return channels // reduction


def check_input(block: str, x: torch.Tensor, spatial_dims: int, channels: int) -> None:
    """Raise ValueError when ``x`` is not a batch of ``channels``-channel images of ``spatial_dims`` dims."""
    if torch.jit.is_tracing():  # a traced graph would bake these Python checks in as constants
        return
    if x.dim() != spatial_dims + 2:
        raise ValueError(
            f"{block}(spatial_dims={spatial_dims}) expects a {spatial_dims + 2}D input shaped "
            f"{_AXES.get(spatial_dims, '(N, C, ...)')}, got a {x.dim()}D tensor of shape {tuple(x.shape)}."
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{block} was built for {channels} channels but the input has {x.shape[1]} "
            f"(shape {tuple(x.shape)})."
        )
