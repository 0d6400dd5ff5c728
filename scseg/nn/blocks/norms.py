"""Norm names the networks and blocks take, as MONAI ``Norm`` factory arguments."""

from __future__ import annotations

NORMS = ("batch", "instance")


def norm_spec(norm: str) -> str | tuple[str, dict]:
    """MONAI ``Norm`` factory argument for a norm name (instance norm gets learnable affine terms)."""
    key = str(norm).lower()
    if key == "batch":
        return "batch"
    if key == "instance":
        return ("instance", {"affine": True})
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}.")
