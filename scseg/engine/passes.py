"""Several forward passes of one volume, averaged: test-time mirroring, ensemble members, MC dropout.

Each pass is the whole model on the (possibly mirrored) volume; its probabilities are mirrored
back, left / right classes swapped when the mirror was left-right, and added to one running total
class by class, so the peak memory is one pass's probabilities plus the total. Each pass's own label
map is kept (one small integer volume per pass) for the uncertainty scores
(:mod:`scseg.engine.uncertainty`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from scseg.artefact.test_time import TestTimeSpec
from scseg.errors import ConfigError
from scseg.nn.ensemble import EnsembleNetwork


def mirrorings(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every combination of mirrored axes, the identity first (nnU-Net mirrors along all 2^n).

    Example:
        >>> mirrorings([0, 2])
        [(), (0,), (2,), (0, 2)]
    """
    return [c for n in range(len(axes) + 1) for c in itertools.combinations(sorted(axes), n)]


def members(network: nn.Module) -> list[nn.Module]:
    """An ensemble's members, or the network itself."""
    return list(network.members) if isinstance(network, EnsembleNetwork) else [network]


def dropout_layers(network: nn.Module) -> list[nn.Module]:
    """The dropout layers that drop something (p > 0)."""
    return [m for m in network.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


@contextlib.contextmanager
def dropout_enabled(network: nn.Module) -> Iterator[None]:
    """Monte Carlo dropout (Bayesian QuickNAT): dropout active, everything else (norms) in eval mode.

    Raises:
        ConfigError: the network has no dropout.
    """
    layers = dropout_layers(network)
    if not layers:
        raise ConfigError(
            "--mc-dropout: this model has no dropout layers (train it with model.dropout > 0), so its "
            "passes would all be the same; use --tta or an ensemble (scseg crossval) for uncertainty"
        )
    try:
        for layer in layers:
            layer.train()
        yield
    finally:
        for layer in layers:
            layer.eval()


def mirror(volume: torch.Tensor, axes: Sequence[int]) -> torch.Tensor:
    """``volume`` (N, C, X, Y, Z) mirrored along spatial ``axes`` (a copy; the volume itself if none)."""
    return volume.flip([2 + a for a in axes]) if axes else volume


class PassAverage:
    """The running mean of passes' probabilities, each mapped back from its mirroring.

    Args:
        test_time: the model's mirroring spec (its left-right axis and class swap).
        keep_labels: keep every pass's label map (``labels``) for the uncertainty scores.

    Example:
        >>> spec = TestTimeSpec(mirror_axes=[0], lr_axis=0, lr_swap=[0, 2, 1])
        >>> average = PassAverage(spec)
        >>> p = torch.tensor([[[0.1, 0.2], [0.6, 0.1], [0.3, 0.7]]]).reshape(1, 3, 2, 1, 1)
        >>> average.add(p, ())
        >>> average.add(mirror(p, [0]), (0,))  # a pass on the mirrored volume, as the model saw it
        >>> average.mean()[0, :, :, 0, 0].tolist()  # class 1 <-> 2 swapped in the mirrored pass
        [[0.10000000149011612, 0.20000000298023224], [0.45000001788139343, 0.4000000059604645], [0.45000001788139343, 0.4000000059604645]]
    """

    def __init__(self, test_time: TestTimeSpec | None = None, keep_labels: bool = True) -> None:
        self.test_time = test_time or TestTimeSpec()
        self.keep_labels = keep_labels
        self.total: torch.Tensor | None = None
        self.count = 0
        self.labels: list[torch.Tensor] = []

    def _swap(self, axes: Sequence[int]) -> list[int] | None:
        spec = self.test_time
        return spec.lr_swap if spec.lr_swap is not None and spec.lr_axis in axes else None

    def add(self, probs: torch.Tensor, axes: Sequence[int]) -> None:
        """Add one pass's probabilities (N, K, X, Y, Z), computed on the volume mirrored along ``axes``."""
        swap = self._swap(axes)
        dims = [2 + a for a in axes]
        if self.keep_labels:
            classes = probs.argmax(dim=1)
            classes = classes.to(torch.uint8 if probs.shape[1] <= 256 else torch.int16)
            if dims:
                classes = classes.flip([d - 1 for d in dims])
            if swap is not None:
                classes = torch.as_tensor(swap, dtype=classes.dtype, device=classes.device)[classes.long()]
            self.labels.append(classes)
        if self.total is None and not dims:
            self.total = probs.float()
        else:
            if self.total is None:
                self.total = torch.zeros_like(probs, dtype=torch.float32)
            for k in range(probs.shape[1]):  # class by class: one extra class volume, not K
                source = probs[:, k if swap is None else swap[k]]
                self.total[:, k].add_(source.flip([d - 1 for d in dims]) if dims else source)
        self.count += 1

    def mean(self) -> torch.Tensor:
        """The mean probabilities (N, K, X, Y, Z)."""
        if self.total is None:
            raise ValueError("no pass was added")
        return self.total.div_(self.count) if self.count > 1 else self.total
