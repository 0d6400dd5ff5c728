"""An scSE block's training step as one autograd function, on the fused CPU kernels.

Why one function: autograd, step by step, writes a full-size gradient for x through the
combination, another through the channel mean (a broadcast divide) and another through the 1x1
projection (a batched product), then adds them up. Here backward reads ``grad`` and ``x`` once for
the two gate gradients (reductions), runs the small parts (the cSE MLP, re-run under autograd; the
sigmoids) and writes x's whole gradient in one more pass
(:func:`~scseg.nn.blocks.gate_kernels.input_grad`). Forward keeps only ``x`` (which the previous
layer holds anyway), the channel means and the two gates (both small) for backward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from scseg.nn.blocks import gate_kernels
from scseg.nn.blocks.spatial_se import spatial_logits


def _kernel(name: str, *args: torch.Tensor, mode: str, training: bool = False):
    out = gate_kernels.run(name, *args, mode=mode, training=training)
    return out if out is not None else gate_kernels.KERNELS[name](*args, mode)  # same math, eager


class _FusedScSE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, mode: str, excite: Callable, *mlp_params):  # type: ignore[override]
        means = x.mean(dim=tuple(range(2, x.dim())))
        channel_gate = excite(means)
        spatial_gate = torch.sigmoid(spatial_logits(x, weight, bias))
        ctx.mode, ctx.excite = mode, excite
        ctx.save_for_backward(x, weight, means, channel_gate, spatial_gate, *mlp_params)
        return _kernel("forward", x, channel_gate, spatial_gate, mode=mode, training=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight, means, channel_gate, spatial_gate, *mlp_params = ctx.saved_tensors
        mode = ctx.mode
        grad = grad.contiguous()
        d_channel_gate, d_spatial_gate = _kernel("gate_grads", grad, x, channel_gate, spatial_gate, mode=mode)
        with torch.enable_grad():  # the cSE MLP, small: re-run it to let autograd differentiate it
            leaf = means.detach().requires_grad_()
            d_means, *d_params = torch.autograd.grad(ctx.excite(leaf), [leaf, *mlp_params], d_channel_gate)
        d_logits = d_spatial_gate * spatial_gate * (1.0 - spatial_gate)
        dx = _kernel("input_grad", grad, x, channel_gate, spatial_gate, d_means, d_logits, weight, mode=mode)
        n, channels = x.shape[:2]
        d_weight = torch.bmm(d_logits.reshape(n, 1, -1), x.reshape(n, channels, -1).transpose(1, 2)).sum(0)
        return dx, d_weight.view_as(weight), d_logits.sum().view(1), None, None, *d_params


def fused_scse(x: torch.Tensor, cse: nn.Module, projection: nn.Module, mode: str) -> torch.Tensor:
    """scSE with ``mode`` aggregation (``add``, ``max``, ``mul``) of ``x`` for training on CPU.

    Args:
        x: (N, C, *spatial), contiguous float32 on CPU (see :func:`gate_kernels.wanted`).
        cse: the block's :class:`~scseg.nn.blocks.channel_se.ChannelSE` (its ``excite`` and MLP).
        projection: the sSE 1x1 convolution (its weight (1, C, 1, ...) and bias (1,)).
        mode: the aggregation.
    """
    params = list(cse.parameters())
    return _FusedScSE.apply(x, projection.weight, projection.bias, mode, cse.excite, *params)
