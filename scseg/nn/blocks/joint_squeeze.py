"""scSE's two squeezes of one input as one autograd step, for the fused CPU kernels.

The channel squeeze (spatial mean, (N, C)) and the spatial squeeze (1x1 projection to one map,
(N, 1, *spatial)) are cheap forward (a reduction each), but eager backward writes a full-size tensor
for each (a broadcast divide and a batched product) and then adds both into x's gradient. Here the
backward writes one: :func:`scseg.nn.blocks.gate_kernels.squeeze_backward`, compiled.
"""

from __future__ import annotations

import torch

from scseg.nn.blocks import gate_kernels
from scseg.nn.blocks.spatial_se import spatial_logits


def _squeeze(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dim=tuple(range(2, x.dim()))), spatial_logits(x, weight, bias)


class _JointSqueeze(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        return _squeeze(x, weight, bias)

    @staticmethod
    def backward(ctx, dz: torch.Tensor, ds: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        dx = gate_kernels.run("squeeze_backward", dz, ds, weight)
        if dx is None:  # compiling failed: the same sum from eager ops
            dx = gate_kernels.squeeze_backward(dz, ds, weight)
        n, channels = x.shape[:2]
        # weight and bias: one small batched product and a sum
        dweight = torch.bmm(ds.reshape(n, 1, -1), x.reshape(n, channels, -1).transpose(1, 2)).sum(0)
        return dx, dweight.view_as(weight), ds.sum().view(1)


def joint_squeeze(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The channel mean (N, C) and the spatial logits (N, 1, *spatial) of ``x``.

    ``weight`` (1, C, 1, ..., 1) and ``bias`` (1,) are the sSE 1x1 convolution's. With autograd on and
    the fused kernels wanted (CPU), backward goes through one compiled kernel; otherwise plain ops.
    """
    if torch.is_grad_enabled() and x.requires_grad and gate_kernels.wanted(x):
        return _JointSqueeze.apply(x, weight, bias)
    return _squeeze(x, weight, bias)
