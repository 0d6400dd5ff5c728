"""An ensemble: models trained on different folds of the same data, whose probabilities are averaged.

``scseg crossval`` trains one model per fold and packs them into one :class:`EnsembleNetwork`, so
the ensemble is one artefact (one ``model.yaml``, one checkpoint) that ``predict``, ``evaluate``,
``export-bundle`` and MONAI Label accept like any model. Every member shares the preprocessing and
the inference settings of the config they were trained from; a member may itself be a composite
(a multi-view model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from scseg.nn.registry import create_model, register_model


@register_model("ensemble", composite=True)
class EnsembleNetwork(nn.Module):
    """Members whose softmax probabilities are averaged with equal weights (nnU-Net's fold ensemble).

    Args:
        spatial_dims: the members' (2 or 3).
        in_channels: image channels.
        out_channels: classes, background included.
        members: one ``{"name": ..., "options": {...}}`` per member (registered architectures).

    Example:
        >>> net = EnsembleNetwork(3, 1, 3, [{"name": "unet", "options": {"base_features": 4}}] * 2)
        >>> len(net.members), net.members[0].out_channels
        (2, 3)
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        members: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.spatial_dims, self.in_channels, self.out_channels = spatial_dims, in_channels, out_channels
        self.members = nn.ModuleList(
            create_model(m["name"], spatial_dims, in_channels, out_channels, **m.get("options", {}))
            for m in members
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            "an ensemble averages its members' probabilities over whole volumes: use "
            "scseg.engine.inference.ScsegInferer (scseg predict / Predictor do)"
        )
