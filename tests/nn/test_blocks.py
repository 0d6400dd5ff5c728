"""Semantics of the SE blocks: gate shapes and ranges, aggregations, layouts, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from scseg.nn import ChannelSE, ChannelSpatialSE, ProjectExcite, SpatialSE, se_block
from scseg.nn.blocks import combine_gates, fused_gate_combination

SHAPES = {2: (2, 8, 13, 11), 3: (2, 8, 7, 9, 5)}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("dims", [2, 3])
def test_cse_gate_is_constant_over_space_and_in_unit_interval(dims: int) -> None:
    x = torch.randn(SHAPES[dims]).abs() + 0.1  # nonzero, so out / x recovers the gate
    cse = ChannelSE(dims, 8)
    ratio = cse(x) / x
    flat = ratio.flatten(2)
    assert torch.allclose(flat, flat[..., :1].expand_as(flat), atol=1e-6)
    assert bool(((flat > 0) & (flat < 1)).all())
    assert torch.allclose(ratio, cse.gate(x).expand_as(ratio), atol=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
def test_sse_gate_is_constant_over_channels_per_voxel(dims: int) -> None:
    x = torch.randn(SHAPES[dims]).abs() + 0.1
    sse = SpatialSE(dims, 8)
    ratio = sse(x) / x
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-6)
    assert bool(((ratio > 0) & (ratio < 1)).all())
    # the gate varies over space (it is a real spatial map, not a constant)
    assert ratio[:, 0].std() > 1e-3


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(
    ("aggregation", "combine"),
    [("add", torch.add), ("max", torch.maximum), ("mul", torch.mul)],
)
def test_scse_aggregation_equals_combination_of_its_branches(dims: int, aggregation: str, combine) -> None:
    x = torch.randn(SHAPES[dims])  # signed input: max must pick per element, not per gate
    scse = ChannelSpatialSE(dims, 8, aggregation=aggregation)
    expected = combine(scse.cse(x), scse.sse(x))
    torch.testing.assert_close(scse(x), expected)


@pytest.mark.parametrize("dims", [2, 3])
def test_scse_concat_fuses_both_branches_with_a_1x1_conv(dims: int) -> None:
    x = torch.randn(SHAPES[dims])
    scse = ChannelSpatialSE(dims, 8, aggregation="concat")
    expected = scse.fuse(torch.cat([scse.cse(x), scse.sse(x)], dim=1))
    torch.testing.assert_close(scse(x), expected)
    assert scse(x).shape == x.shape


@pytest.mark.parametrize("mode", ["add", "max", "mul"])
def test_fused_gating_matches_plain_autograd_values_and_gradients(mode: str) -> None:
    x = torch.randn(2, 6, 5, 7, 9, requires_grad=True)
    gc = torch.rand(2, 6, 1, 1, 1, requires_grad=True)
    gs = torch.rand(2, 1, 5, 7, 9, requires_grad=True)
    grad = torch.randn(2, 6, 5, 7, 9)
    fused = fused_gate_combination(x, gc, gs, mode)
    fused_grads = torch.autograd.grad(fused, (x, gc, gs), grad)
    plain = combine_gates(x, gc, gs, mode)
    plain_grads = torch.autograd.grad(plain, (x, gc, gs), grad)
    torch.testing.assert_close(fused, plain)
    for got, want in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["add", "max", "mul"])
def test_fused_gating_passes_gradcheck(mode: str) -> None:
    x = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    gc = torch.rand(1, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    gs = torch.rand(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: fused_gate_combination(a, b, c, mode), (x, gc, gs))


@pytest.mark.parametrize("kind", ["cse", "sse", "scse", "pe"])
def test_blocks_accept_non_contiguous_and_channels_last_inputs(kind: str) -> None:
    block = se_block(kind, 3, 8)
    x = torch.randn(2, 8, 6, 7, 5)
    reference = block(x)
    transposed = x.transpose(2, 4).contiguous().transpose(2, 4)  # same values, non-contiguous strides
    assert not transposed.is_contiguous()
    torch.testing.assert_close(block(transposed), reference)
    channels_last = x.to(memory_format=torch.channels_last_3d)
    out = block(channels_last)
    torch.testing.assert_close(out, reference)
    out.sum().backward()  # backward through the strided layout as well


def test_scse_keeps_channels_last_layout() -> None:
    x = torch.randn(2, 8, 6, 7, 5).to(memory_format=torch.channels_last_3d)
    out = ChannelSpatialSE(3, 8)(x)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)


def test_project_excite_gate_varies_over_space_and_channels() -> None:
    x = torch.randn(1, 8, 5, 6, 7)
    gate = ProjectExcite(8).gate(x)
    assert gate.shape == x.shape
    assert gate.std(dim=1).mean() > 1e-4 and gate.flatten(2).std(dim=2).mean() > 1e-4
    assert bool(((gate > 0) & (gate < 1)).all())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ChannelSE(2, 1, reduction=2), "channels // reduction"),
        (lambda: ChannelSpatialSE(3, 3, reduction=4), "channels // reduction"),
        (lambda: ProjectExcite(1), "channels // reduction"),
        (lambda: se_block("pe", 2, 8), "3D volumes only"),
        (lambda: se_block("squeeze", 2, 8), "unknown SE kind"),
        (lambda: ChannelSpatialSE(2, 8, aggregation="mean"), "aggregation must be one of"),
        (lambda: ChannelSE(4, 8), "spatial_dims must be one of"),
    ],
)
def test_bad_block_arguments_raise_clear_value_errors(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("kind", ["cse", "sse", "scse", "pe"])
def test_wrong_input_rank_raises_value_error(kind: str) -> None:
    block = se_block(kind, 3, 8)
    with pytest.raises(ValueError, match=r"expects a 5D input"):
        block(torch.randn(2, 8, 6, 7))


def test_wrong_channel_count_raises_value_error() -> None:
    with pytest.raises(ValueError, match="built for 8 channels"):
        ChannelSpatialSE(2, 8)(torch.randn(1, 4, 6, 6))


def test_se_block_none_is_identity() -> None:
    x = torch.randn(1, 4, 5, 5)
    assert se_block("none", 2, 4)(x) is x


def _saved_bytes_besides(x: torch.Tensor, fn) -> int:
    """Bytes of tensor storage autograd saves for backward, not counting ``x``'s own storage."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    storages.pop(x.untyped_storage().data_ptr(), None)
    return sum(storages.values())


@pytest.mark.parametrize("aggregation", ["add", "max", "mul"])
def test_fused_scse_keeps_no_full_size_temporaries_for_backward(aggregation: str) -> None:
    x = torch.randn(2, 16, 24, 24, 24, requires_grad=True)
    full = x.numel() * x.element_size()
    scse = ChannelSpatialSE(3, 16, aggregation=aggregation)
    fused = _saved_bytes_besides(x, scse)
    plain = _saved_bytes_besides(
        x, lambda t: combine_gates(t, scse.cse.gate(t), scse.sse.gate(t), aggregation)
    )
    assert fused < full / 4, "only the small gates (and x itself) may be kept"
    if aggregation != "add":  # plain max/mul keep full-size products; plain add happens to keep none
        assert plain >= full
