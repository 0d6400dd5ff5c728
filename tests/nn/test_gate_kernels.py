"""The compiled (inductor) scSE kernels give what the eager kernels give, and fall back cleanly."""

from __future__ import annotations

import warnings

import pytest
import torch

from scseg.nn.blocks import ChannelSpatialSE, gate_kernels
from scseg.nn.blocks.gating import fused_gate_combination

SHAPES = {2: (2, 6, 9, 11), 3: (2, 6, 5, 7, 9)}


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Fused kernels on for small test tensors; returns the cache of compiled kernels."""
    monkeypatch.setattr(gate_kernels, "MIN_ELEMENTS", 0)
    monkeypatch.delenv(gate_kernels.ENV, raising=False)
    return gate_kernels._compiled


def _block_outputs_and_grads(
    block: ChannelSpatialSE, x: torch.Tensor, grad: torch.Tensor
) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    block.zero_grad()
    y = block(x)
    y.backward(grad)
    return [y.detach(), x.grad, *(p.grad for p in block.parameters())]


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("aggregation", ["add", "max", "mul"])
def test_compiled_scse_equals_eager_values_and_all_gradients(
    compiled: dict, monkeypatch: pytest.MonkeyPatch, dims: int, aggregation: str
) -> None:
    torch.manual_seed(0)
    block = ChannelSpatialSE(dims, 6, aggregation=aggregation)
    x, grad = torch.randn(SHAPES[dims]), torch.randn(SHAPES[dims])
    fused = _block_outputs_and_grads(block, x, grad)
    ndim = dims + 2  # kernels are keyed by the tensors' number of dimensions
    ran = {(name, aggregation, ndim) for name in ("forward", "gate_grads", "input_grad")}
    assert ran <= set(compiled), "the compiled kernels ran"
    monkeypatch.setenv(gate_kernels.ENV, "eager")
    eager = _block_outputs_and_grads(block, x, grad)
    for got, want in zip(fused, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_compiled_kernels_serve_new_shapes_and_inference(compiled: dict) -> None:
    block = ChannelSpatialSE(3, 6)
    for shape in [(2, 6, 5, 7, 9), (3, 6, 12, 4, 6), (1, 6, 3, 3, 3)]:  # batch 1 recompiles once
        x = torch.randn(shape, requires_grad=True)
        block(x).square().sum().backward()
        assert x.grad.shape == x.shape and torch.isfinite(x.grad).all()
        with torch.inference_mode():
            channel_gate, spatial_gate = block.cse.gate(x.detach()), block.sse.gate(x.detach())
            torch.testing.assert_close(block(x.detach()), torch.maximum(x * channel_gate, x * spatial_gate))


def test_other_dtypes_layouts_small_tensors_and_tracing_stay_eager(compiled: dict, monkeypatch) -> None:
    x = torch.randn(2, 6, 5, 7, 9)
    assert gate_kernels.wanted(x)
    assert not gate_kernels.wanted(x.double())
    assert not gate_kernels.wanted(x.to(memory_format=torch.channels_last_3d))
    monkeypatch.setattr(gate_kernels, "MIN_ELEMENTS", x.numel() + 1)
    assert not gate_kernels.wanted(x)
    monkeypatch.setattr(gate_kernels, "MIN_ELEMENTS", 0)
    monkeypatch.setenv(gate_kernels.ENV, "eager")
    assert not gate_kernels.wanted(x)


def test_no_working_compiler_warns_once_and_gives_the_eager_result(compiled: dict, monkeypatch) -> None:
    def broken_compile(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    torch.manual_seed(0)
    block = ChannelSpatialSE(3, 6)
    x, grad = torch.randn(SHAPES[3]), torch.randn(SHAPES[3])
    monkeypatch.setenv(gate_kernels.ENV, "eager")
    eager = _block_outputs_and_grads(block, x, grad)
    monkeypatch.delenv(gate_kernels.ENV)
    monkeypatch.setattr(gate_kernels, "_compiled", {})
    monkeypatch.setattr(gate_kernels, "_state", {"unavailable": False, "compiled_once": False})
    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="No working C\\+\\+ compiler.*eager kernels"):
        first = _block_outputs_and_grads(block, x, grad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once only
        again = _block_outputs_and_grads(block, x, grad)
        gc, gs = torch.rand(2, 6, 1, 1, 1), torch.rand(2, 1, 5, 7, 9)
        torch.testing.assert_close(fused_gate_combination(x, gc, gs, "max"), torch.maximum(x * gc, x * gs))
    for got, other, want in zip(first, again, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(other, want, rtol=1e-5, atol=1e-5)
    assert gate_kernels._state["unavailable"]


def test_fused_block_keeps_only_x_and_small_tensors_for_backward(compiled: dict) -> None:
    x = torch.randn(2, 16, 12, 12, 12, requires_grad=True)
    block = ChannelSpatialSE(3, 16)
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x)
    assert ("forward", "max", 5) in compiled, "the fused path ran"
    storages.pop(x.untyped_storage().data_ptr())
    full = x.numel() * x.element_size()
    assert sum(storages.values()) < full / 8, "gates, channel means and parameters only"
