"""Whole-volume prediction: MONAI sliding windows in 3D, slice-wise (as windows) in 2D.

:class:`ScsegInferer` is the one inferer: ``scseg predict``, validation during training, the MONAI
Label app and exported MONAI bundles (``configs/inference.json`` names it by ``_target_``) all run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import Inferer, SlidingWindowInferer
from torch import nn

from scseg.artefact.spec import ModelSpec
from scseg.config.schema import SLICE_AXIS_INDEX
from scseg.labels.hemispheres import unmerge_probabilities
from scseg.nn.ensemble import EnsembleNetwork
from scseg.nn.multiview import MultiViewNetwork


class SliceWise(nn.Module):
    """Run a 2D network on 3D windows that are one slice thick along ``axis`` (0, 1 or 2)."""

    def __init__(self, net: nn.Module, axis: int) -> None:
        super().__init__()
        self.net, self.axis = net, axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.squeeze(self.axis + 2)).unsqueeze(self.axis + 2)


def softmax_(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 in place: a whole-volume softmax would otherwise double the peak memory."""
    logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()
    return logits.div_(logits.sum(dim=1, keepdim=True))


class ScsegInferer(Inferer):
    """Softmax probabilities ``(N, K, *spatial)`` of a network over whole preprocessed volumes.

    3D networks run on MONAI sliding windows; 2D networks run on every slice along ``slice_axis``
    as windows one voxel thick that overlap only in-plane, so MONAI's inferer does the tiling,
    padding and Gaussian blending for both. Windows run on ``sw_device`` while the blended output
    stays on the input's device, so a GPU only ever holds ``sw_batch_size`` windows.

    Args:
        spatial_dims: the network's (2 or 3); inputs are always 3D volumes.
        roi_size: window size, ``spatial_dims`` values (2D: in-plane).
        overlap: window overlap in [0, 1).
        sw_batch_size: windows per forward pass.
        blend: ``gaussian`` or ``constant``.
        slice_axis: 2D: ``sagittal``, ``coronal`` or ``axial``.
        views: 2D: several slice axes whose probabilities are averaged (overrides ``slice_axis``).
        sw_device: where the windows run (default: the input's device).

    Example:
        >>> from scseg.nn import create_model
        >>> net = create_model("unet", 2, 1, 3, base_features=4).eval()
        >>> inferer = ScsegInferer(2, [16, 16], slice_axis="axial")
        >>> inferer(torch.randn(1, 1, 20, 18, 5), net).shape
        torch.Size([1, 3, 20, 18, 5])
    """

    def __init__(
        self,
        spatial_dims: int,
        roi_size: Sequence[int],
        overlap: float = 0.5,
        sw_batch_size: int = 4,
        blend: str = "gaussian",
        slice_axis: str = "coronal",
        views: Sequence[str] | None = None,
        sw_device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        if len(roi_size) != spatial_dims:
            raise ValueError(f"roi_size needs {spatial_dims} values, got {list(roi_size)}")
        axes = list(views) if views else [slice_axis]
        unknown = [a for a in axes if a not in SLICE_AXIS_INDEX]
        if unknown:
            raise ValueError(f"unknown slice axis/view {unknown}; expected some of {list(SLICE_AXIS_INDEX)}")
        self.spatial_dims = spatial_dims
        self.window_args = (overlap, sw_batch_size, blend, sw_device)
        self.axes: list[int | None] = [SLICE_AXIS_INDEX[a] for a in axes] if spatial_dims == 2 else [None]
        self.inferers = [
            self._windows(list(roi_size), overlap, sw_batch_size, blend, a, sw_device) for a in self.axes
        ]

    @staticmethod
    def _windows(
        roi: list[int], overlap: float, sw_batch_size: int, blend: str, axis: int | None, sw_device: Any
    ) -> SlidingWindowInferer:
        overlaps: float | list[float] = overlap
        if axis is not None:  # one slice thick along the axis, no overlap across slices
            roi.insert(axis, 1)
            overlaps = [overlap] * 3
            overlaps[axis] = 0.0
        return SlidingWindowInferer(
            roi_size=roi,
            sw_batch_size=sw_batch_size,
            overlap=overlaps,
            mode=blend,
            sw_device=sw_device,
            progress=False,
        )

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Probabilities (float32, softmax over classes) for a batch of preprocessed volumes."""
        if isinstance(network, EnsembleNetwork):  # the mean of the members' probabilities
            total = self(inputs, network.members[0], *args, **kwargs)
            for member in network.members[1:]:
                total.add_(self(inputs, member, *args, **kwargs))
            return total.div_(len(network.members))
        if isinstance(network, MultiViewNetwork):
            return self.fuse_views(inputs, network, *args, **kwargs)
        total: torch.Tensor | None = None
        for axis, inferer in zip(self.axes, self.inferers, strict=True):
            total = self._add_view(inputs, network, axis, inferer, total, 1.0, None, *args, **kwargs)
        assert total is not None
        return total.div_(len(self.axes)) if len(self.axes) > 1 else total

    @torch.no_grad()
    def fuse_views(
        self, inputs: torch.Tensor, network: MultiViewNetwork, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The weighted mean of a multi-view model's views (QuickNAT, FastSurfer).

        A view that learnt one class per left / right pair gives both sides the pair's probability
        (as FastSurfer does); the result is normalised per voxel, so with no merged view it is
        exactly ``sum(w_v * p_v) / sum(w_v)``, accumulated in place (one volume of probabilities).
        """
        total: torch.Tensor | None = None
        for view, net in zip(network.views, network.nets, strict=True):
            axis = SLICE_AXIS_INDEX[view.axis]
            inferer = self._windows(list(view.roi_size), *self.window_args[:3], axis, self.window_args[3])
            total = self._add_view(
                inputs, net, axis, inferer, total, view.weight, view.classes, *args, **kwargs
            )
        assert total is not None
        return total.div_(total.sum(dim=1, keepdim=True).clamp_min_(1e-12))

    def _add_view(
        self,
        inputs: torch.Tensor,
        net: nn.Module,
        axis: int | None,
        inferer: SlidingWindowInferer,
        total: torch.Tensor | None,
        weight: float,
        classes: Sequence[int] | None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        """``total += weight * probabilities`` of one network along one slice axis (3D: ``axis`` None)."""
        roi = list(inferer.roi_size)
        if axis is not None and not args and not kwargs and self._slices_fit(inputs, axis, roi):
            return self._add_slices(inputs, net, axis, roi, total, weight, classes)
        probs = softmax_(
            inferer(inputs, SliceWise(net, axis) if axis is not None else net, *args, **kwargs).float()
        )
        if classes is not None:
            probs = unmerge_probabilities(probs, classes)
        if total is None:
            return probs.mul_(weight) if weight != 1.0 else probs
        return total.add_(probs, alpha=weight)

    @staticmethod
    def _slices_fit(inputs: torch.Tensor, axis: int, roi: list[int]) -> bool:
        """Whether every slice along ``axis`` fits in one window (then windows never overlap)."""
        return all(inputs.shape[2 + d] <= roi[d] for d in range(3) if d != axis)

    def _add_slices(
        self,
        inputs: torch.Tensor,
        net: nn.Module,
        axis: int,
        roi: list[int],
        total: torch.Tensor | None,
        weight: float,
        classes: Sequence[int] | None,
    ) -> torch.Tensor:
        """The sliding-window result when each slice is one window, without the window machinery.

        Each voxel then lies in exactly one window, so MONAI's blending weights cancel and the
        result equals the inferer's (``tests/engine/test_inference.py``). Doing it here saves, per
        view, a full-volume logits buffer, its count map and a second pass over the K-class volume:
        with 99 classes that bookkeeping cost a third of the networks' own forward time.
        """
        sw_batch_size, sw_device = self.window_args[1], self.window_args[3]
        device = torch.device(sw_device) if sw_device is not None else inputs.device
        plane = [inputs.shape[2 + d] for d in range(3) if d != axis]
        window = [roi[d] for d in range(3) if d != axis]
        pad: list[int] = []  # MONAI's padding: zeros, the odd voxel after (F.pad lists the last dim first)
        for size, want in zip(reversed(plane), reversed(window), strict=True):
            pad += [(want - size) // 2, want - size - (want - size) // 2]
        lo0, lo1 = pad[2], pad[0]
        slices = inputs.movedim(2 + axis, 1)  # (N, S, C, a, b)
        table = torch.as_tensor(classes, device=device) if classes is not None else None
        for n in range(inputs.shape[0]):
            for start in range(0, slices.shape[1], sw_batch_size):
                batch = F.pad(slices[n, start : start + sw_batch_size].to(device), pad)
                logits = net(batch)[..., lo0 : lo0 + plane[0], lo1 : lo1 + plane[1]]
                probs = torch.softmax(logits.float(), dim=1)
                if table is not None:
                    probs = torch.index_select(probs, 1, table)
                if total is None:
                    total = torch.zeros(
                        (inputs.shape[0], probs.shape[1], *inputs.shape[2:]), device=inputs.device
                    )
                target = total[n].movedim(1 + axis, 0)[start : start + probs.shape[0]]  # (s, K, a, b)
                target.add_(probs.to(target.device), alpha=weight)
        assert total is not None
        return total


def inferer_args(spec: ModelSpec) -> dict[str, Any]:
    """:class:`ScsegInferer`'s arguments for a model, as plain JSON values (the bundle writes them)."""
    inference = spec.inference
    return {
        "spatial_dims": spec.spatial_dims,
        "roi_size": list(inference.roi_size),
        "overlap": inference.overlap,
        "sw_batch_size": inference.sw_batch_size,
        "blend": inference.blend,
        "slice_axis": spec.mode.slice_axis,
    }


def inferer_for(spec: ModelSpec, views: Sequence[str] | None = None, sw_device: Any = None) -> ScsegInferer:
    """The :class:`ScsegInferer` of a model (optionally averaging several 2D ``views``)."""
    return ScsegInferer(**inferer_args(spec), views=views, sw_device=sw_device)
