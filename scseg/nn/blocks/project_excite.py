"""Project & Excite (PE), the 3D-specific relative of cSE."""

from __future__ import annotations

import torch
from torch import nn

from scseg.nn.blocks._checks import check_input, check_reduction


class ProjectExcite(nn.Module):
    r"""Project & Excite, Rickmann, Roy, Sarasua, Navab & Wachinger (MICCAI 2019). 3D only.

    Instead of squeezing each channel to one number, PE projects it onto the three axes by average
    pooling over the other two, broadcasts the three projections back and adds them, then excites
    with a 1x1x1 bottleneck giving a gate per channel *and* voxel:

    .. math::
        z_{c,d,h,w} = \bar{x}_{c,d,:,:} + \bar{x}_{c,:,h,:} + \bar{x}_{c,:,:,w}, \qquad
        \hat{x} = x \odot \sigma\!\left(W_2 * \delta(W_1 * z)\right)

    with 1x1x1 convolutions :math:`W_1: C \to C/r`, :math:`W_2: C/r \to C`.

    Args:
        channels: number of input (and output) channels C.
        reduction: bottleneck ratio r (paper: 2).

    Example:
        >>> import torch
        >>> pe = ProjectExcite(channels=8)
        >>> pe(torch.randn(1, 8, 5, 6, 7)).shape
        torch.Size([1, 8, 5, 6, 7])
    """

    spatial_dims = 3

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        hidden = check_reduction("ProjectExcite", channels, reduction)
        self.channels = channels
        self.excite = nn.Sequential(
            nn.Conv3d(channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv3d(hidden, channels, kernel_size=1),
            nn.Sigmoid(),
        )

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The PE gate, shaped like ``x``."""
        check_input("ProjectExcite", x, 3, self.channels)
        projection = (
            x.mean(dim=(3, 4), keepdim=True)
            + x.mean(dim=(2, 4), keepdim=True)
            + x.mean(dim=(2, 3), keepdim=True)
        )
        return self.excite(projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
