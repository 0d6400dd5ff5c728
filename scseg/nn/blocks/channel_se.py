"""Channel squeeze & excitation (cSE)."""

from __future__ import annotations

import torch
from torch import nn

from scseg.nn.blocks._checks import check_input, check_reduction, check_spatial_dims


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

    Args:
        spatial_dims: number of spatial dimensions (1, 2 or 3).
        channels: number of input (and output) channels C.
        reduction: bottleneck ratio r; the hidden width is ``channels // reduction`` (paper: 2).

    Example:
        >>> import torch
        >>> cse = ChannelSE(spatial_dims=3, channels=16)
        >>> cse(torch.randn(2, 16, 8, 8, 8)).shape
        torch.Size([2, 16, 8, 8, 8])
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 2) -> None:
        super().__init__()
        check_spatial_dims("ChannelSE", spatial_dims)
        hidden = check_reduction("ChannelSE", channels, reduction)
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.reduction = reduction
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate :math:`g_c`, shaped (N, C, 1, ..., 1) so that it broadcasts against ``x``."""
        check_input("ChannelSE", x, self.spatial_dims, self.channels)
        return self.excite(x.mean(dim=tuple(range(2, x.dim()))))

    def excite(self, squeezed: torch.Tensor) -> torch.Tensor:
        """The gate from the channel means ``squeezed`` (N, C), shaped (N, C, 1, ..., 1)."""
        excited = torch.sigmoid(self.fc2(torch.relu(self.fc1(squeezed))))
        return excited.view(*excited.shape, *([1] * self.spatial_dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
