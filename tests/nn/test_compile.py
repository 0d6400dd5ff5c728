"""torch.compile (training) and torch.export (inference export) of the 3D scSE U-Net.

TorchScript (`torch.jit.trace/script`) is deprecated in torch 2.13; we support compile and export.
"""

from __future__ import annotations

import pytest
import torch

from scseg.nn import create_model


@pytest.mark.slow
def test_torch_compile_matches_eager_forward_and_backward_for_3d_scse_unet() -> None:
    torch.manual_seed(0)
    model = create_model("unet", 3, 1, 3, se="scse", base_features=4)
    x = torch.randn(2, 1, 17, 19, 21)
    eager = model(x)
    eager.square().mean().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model)(x)  # inductor on CPU: the fused gating goes through dynamo too
    compiled.square().mean().backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    scale = max(g.abs().max() for g in eager_grads)
    for p, want in zip(model.parameters(), eager_grads, strict=True):
        torch.testing.assert_close(p.grad, want, rtol=1e-3, atol=1e-4 * float(scale))


def test_torch_export_of_3d_scse_unet_for_inference() -> None:
    torch.manual_seed(0)
    model = create_model("unet", 3, 1, 3, se="scse", base_features=4).eval()
    exported = torch.export.export(model, (torch.randn(1, 1, 17, 19, 21),))
    other = torch.randn(1, 1, 17, 19, 21)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(other), model(other))
