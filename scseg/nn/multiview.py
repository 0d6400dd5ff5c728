"""A multi-view model: one 2D network per slicing view, fused by a weighted mean (QuickNAT, FastSurfer).

The networks run on whole volumes through :class:`scseg.engine.inference.ScsegInferer`, which
slices the volume along each view's axis, maps a view with merged left / right classes back onto
every class and averages the views' probabilities with their weights. Packing the views into one
module keeps a multi-view model one artefact: one ``model.yaml``, one checkpoint, one bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scseg.nn.registry import create_model, register_model

VIEW_AXES = ("sagittal", "coronal", "axial")


@dataclass(frozen=True)
class View:
    """How one view's network is applied: slicing axis, fusion weight, in-plane window, and, for a
    view that merges left / right pairs, the view's class of each output class."""

    axis: str
    weight: float
    roi_size: list[int]
    classes: list[int] | None


@register_model("multiview", composite=True)
class MultiViewNetwork(nn.Module):
    """2D networks, one per view, whose softmax probabilities are fused by a weighted mean.

    Args:
        spatial_dims: 2 (every view is a 2D network).
        in_channels: image channels.
        out_channels: classes of the fused output, background included.
        views: one mapping per view: ``axis`` (sagittal, coronal, axial), ``weight`` (> 0),
            ``roi_size`` (in-plane window), ``network`` (``{"name": ..., "options": {...}}``, a
            registered 2D architecture) and ``classes`` (``None``, or the view's class for every
            output class when the view learnt one class per left / right pair).

    Example:
        >>> views = [{"axis": "coronal", "weight": 0.6, "roi_size": [16, 16], "network": {"name": "unet", "options": {"base_features": 4}}},
        ...          {"axis": "sagittal", "weight": 0.4, "roi_size": [16, 16], "network": {"name": "unet", "options": {"base_features": 4}},
        ...           "classes": [0, 1, 1]}]
        >>> net = MultiViewNetwork(2, 1, 3, views)
        >>> [v.axis for v in net.views], [n.out_channels for n in net.nets]
        (['coronal', 'sagittal'], [3, 2])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        views: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(
                f"a multi-view model is made of 2D networks (spatial_dims=2), got {spatial_dims}"
            )
        if not views:
            raise ValueError("a multi-view model needs at least one view")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.views: list[View] = []
        nets = []
        for raw in views:
            view = View(
                str(raw["axis"]), float(raw["weight"]), [int(r) for r in raw["roi_size"]], raw.get("classes")
            )
            if view.axis not in VIEW_AXES or view.weight <= 0 or len(view.roi_size) != 2:
                raise ValueError(f"view {raw}: axis one of {VIEW_AXES}, weight > 0, roi_size of 2 values")
            if view.classes is not None and len(view.classes) != out_channels:
                raise ValueError(
                    f"view {view.axis}: classes maps {len(view.classes)} classes, expected {out_channels}"
                )
            classes = out_channels if view.classes is None else max(view.classes) + 1
            network = raw["network"]
            nets.append(create_model(network["name"], 2, in_channels, classes, **network.get("options", {})))
            self.views.append(view)
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            "a multi-view model runs on whole volumes, view by view: use scseg.engine.inference.ScsegInferer "
            "(scseg predict / Predictor do)"
        )
