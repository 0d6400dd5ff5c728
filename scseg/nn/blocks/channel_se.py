"""Channel squeeze & excitation (cSE)."""

from __future__ import annotations

import torch
from torch import nn

from scseg.nn.blocks._checks import check_input, check_reduction, check_spatial_dims

SQUEEZES = ("avg", "max", "avgmax")
GATES = ("sigmoid", "tanh", "relu")
_GATE_FUNCTIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


class ChannelSE(nn.Module):
    r"""Channel squeeze & excitation (cSE), Hu et al. (CVPR 2018) as used by Roy et al. (MICCAI 2018).

    A global average pool squeezes each channel to one number, a two-layer bottleneck MLP turns these
    into one gate per channel, and every channel is rescaled by its gate:

    .. math::
        z = \frac{1}{|\Omega|}\sum_{v \in \Omega} x_{:, v}, \qquad
        g_c = \sigma\!\left(W_2\, \delta(W_1 z)\right), \qquad
        \hat{x}_{c, v} = g_c\, x_{c, v}

    with :math:`W_1 \in \mathbb{R}^{C/r \times C}`, :math:`W_2 \in \mathbb{R}^{C \times C/r}`, ReLU
    :math:`\delta` and sigmoid :math:`\sigma`. The gate is constant over space and lies in (0, 1).
    The same code serves 1D, 2D and 3D inputs.

    The design space SE-Nets (Hu et al., TPAMI 2020, section 6) explored is selectable:

    - ``squeeze``: the descriptor :math:`z`: ``avg`` (global average, the default), ``max`` (global
      max), or ``avgmax``: both through the same MLP, summed before the gate,
      :math:`g = \sigma(W_2\delta(W_1 z^{avg}) + W_2\delta(W_1 z^{max}))` (as in CBAM, Woo et al.
      2018);
    - ``gate``: the excitation non-linearity in place of :math:`\sigma`: ``sigmoid`` (default),
      ``tanh`` (gates in (-1, 1)) or ``relu`` (gates in [0, inf)), the alternatives SE-Nets compared.

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        channels: number of input (and output) channels C.
        reduction: bottleneck ratio r; the hidden width is ``channels // reduction`` (paper: 2).
        squeeze: ``avg``, ``max`` or ``avgmax``.
        gate: ``sigmoid``, ``tanh`` or ``relu``.

    Example:
        >>> import torch
        >>> cse = ChannelSE(spatial_dims=3, channels=16)
        >>> cse(torch.randn(2, 16, 8, 8, 8)).shape
        torch.Size([2, 16, 8, 8, 8])
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        reduction: int = 2,
        squeeze: str = "avg",
        gate: str = "sigmoid",
    ) -> None:
        super().__init__()
        check_spatial_dims("ChannelSE", spatial_dims)
        hidden = check_reduction("ChannelSE", channels, reduction)
        if squeeze not in SQUEEZES:
            raise ValueError(f"ChannelSE: squeeze must be one of {SQUEEZES}, got {squeeze!r}.")
        if gate not in GATES:
            raise ValueError(f"ChannelSE: gate must be one of {GATES}, got {gate!r}.")
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.reduction = reduction
        self.squeeze, self.gate_name = squeeze, gate
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate :math:`g_c`, shaped (N, C, 1, ..., 1) so that it broadcasts against ``x``."""
        check_input("ChannelSE", x, self.spatial_dims, self.channels)
        axes = tuple(range(2, x.dim()))
        if self.squeeze == "avg":
            return self.excite(x.mean(dim=axes))
        if self.squeeze == "max":
            return self.excite(x.amax(dim=axes))
        return self.excite(torch.stack([x.mean(dim=axes), x.amax(dim=axes)], dim=1))

    def excite(self, squeezed: torch.Tensor) -> torch.Tensor:
        """The gate from the channel descriptor ``squeezed``: (N, C), or (N, 2, C) for ``avgmax``
        (both descriptors through the MLP, summed); shaped (N, C, 1, ..., 1)."""
        logits = self.fc2(torch.relu(self.fc1(squeezed)))
        if logits.dim() == 3:
            logits = logits.sum(dim=1)
        excited = _GATE_FUNCTIONS[self.gate_name](logits)
        return excited.view(*excited.shape, *([1] * self.spatial_dims))

    def extra_repr(self) -> str:
        return f"squeeze={self.squeeze!r}, gate={self.gate_name!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
