"""Architectures: every model x dims x SE kind x positions, SE placement, round trips, errors."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from scseg.nn import (
    SE_KINDS,
    ChannelSE,
    ChannelSpatialSE,
    ProjectExcite,
    SEEncoderDecoder,
    SpatialSE,
    available_models,
    create_model,
)

SE_TYPES = (ChannelSE, SpatialSE, ChannelSpatialSE, ProjectExcite)
# small widths keep the full matrix fast; sizes are odd on purpose (the reference code crashed there)
SMALL = {"unet": {"base_features": 4}, "sdnet": {"features": 6}, "densenet": {"features": 6}}
ODD = {2: (35, 37), 3: (17, 19, 21)}
POSITIONS = [("encoder", "bottleneck", "decoder"), ("encoder",), ("bottleneck",), ("decoder",)]


def _kinds(dims: int) -> list[str]:
    return [k for k in SE_KINDS if k != "pe" or dims == 3]


def _se_modules(model: SEEncoderDecoder) -> list[nn.Module]:
    """The SE blocks placed after blocks (not the cse/sse branches inside an scSE)."""
    placed = [*model.encoder_se, model.bottleneck_se, *model.decoder_se]
    return [m for m in placed if isinstance(m, SE_TYPES)]


CASES = [
    (name, dims, kind, positions)
    for name in ("unet", "sdnet", "densenet")
    for dims in (2, 3)
    for kind in _kinds(dims)
    for positions in (POSITIONS if kind != "none" else POSITIONS[:1])
]


@pytest.mark.parametrize(
    ("name", "dims", "kind", "positions"),
    CASES,
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else str(v),
)
def test_forward_backward_on_odd_sizes(name: str, dims: int, kind: str, positions: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    model = create_model(name, dims, 1, 3, se=kind, se_positions=positions, **SMALL[name])
    x = torch.randn(2, 1, *ODD[dims])
    out = model(x)
    assert out.shape == (2, 3, *ODD[dims])
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    se_blocks = _se_modules(model)
    assert len(se_blocks) == (
        0
        if kind == "none"
        else sum({"encoder": model.depth, "bottleneck": 1, "decoder": model.depth}[p] for p in positions)
    )
    for block in se_blocks:  # (a 2-unit hidden layer may start dead, so ask per block, not per tensor)
        assert sum(p.grad.abs().sum() for p in block.parameters()) > 0, "every SE block must receive gradient"


@pytest.mark.parametrize("name", ["unet", "sdnet", "densenet"])
@pytest.mark.parametrize("dims", [2, 3])
def test_one_unshared_se_block_per_block_at_requested_positions(name: str, dims: int) -> None:
    model = create_model(name, dims, 1, 2, se="scse", **SMALL[name])
    assert isinstance(model, SEEncoderDecoder)
    blocks = _se_modules(model)
    assert len(blocks) == 2 * model.depth + 1
    assert len({id(b) for b in blocks}) == len(blocks)
    only_bottleneck = create_model(name, dims, 1, 2, se="cse", se_positions=["bottleneck"], **SMALL[name])
    assert isinstance(only_bottleneck.bottleneck_se, ChannelSE)
    assert all(isinstance(m, nn.Identity) for m in [*only_bottleneck.encoder_se, *only_bottleneck.decoder_se])


def test_bottleneck_se_is_really_applied() -> None:
    # instance norm: features have unit scale at init even in eval mode, so the gate's effect shows
    model = create_model(
        "unet", 2, 1, 2, se="cse", se_positions="bottleneck", base_features=4, norm="instance"
    ).eval()
    calls: list[torch.Size] = []
    model.bottleneck_se.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    x = torch.randn(1, 1, 32, 32)
    before = model(x)
    assert calls == [torch.Size([1, 64, 2, 2])]
    with torch.no_grad():
        model.bottleneck_se.fc2.bias.fill_(-5.0)  # close the gate: the output must change
    assert not torch.allclose(model(x), before)


@pytest.mark.parametrize("name", ["unet", "sdnet", "densenet"])
def test_state_dict_round_trip_and_eval_determinism(name: str) -> None:
    torch.manual_seed(1)
    model = create_model(name, 3, 1, 3, se="scse", dropout=0.3, norm="instance", **SMALL[name])
    model.train()
    model(torch.randn(2, 1, 32, 32, 32)).mean().backward()  # touch running stats / training path
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    clone = create_model(name, 3, 1, 3, se="scse", dropout=0.3, norm="instance", **SMALL[name])
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval()
    clone.eval()
    x = torch.randn(1, 1, 17, 18, 35)  # odd sizes; the bottleneck keeps 2 voxels for instance norm
    with torch.no_grad():
        first, second, cloned = model(x), model(x), clone(x)
    assert torch.equal(first, second)
    torch.testing.assert_close(cloned, first)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_norm_is_configurable(norm: str) -> None:
    model = create_model("unet", 2, 1, 2, base_features=4, norm=norm)
    wanted = nn.BatchNorm2d if norm == "batch" else nn.InstanceNorm2d
    assert any(isinstance(m, wanted) for m in model.modules())


def test_dropout_is_configurable_and_off_in_eval() -> None:
    model = create_model("sdnet", 2, 1, 2, features=6, dropout=0.5)
    assert any(isinstance(m, nn.Dropout | nn.Dropout2d) for m in model.modules())
    x = torch.randn(1, 1, 32, 32)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_registry_lists_the_four_architectures() -> None:
    assert available_models() == ["densenet", "resunet", "sdnet", "unet"]


def test_monai_basicunet_is_a_baseline_by_name_without_se() -> None:
    from monai.networks.nets import BasicUNet

    from scseg.config.schema import ModelConfig

    net = create_model("basicunet", 2, 1, 5, features=[8, 8, 16, 32, 64, 8])
    assert isinstance(net, BasicUNet) and net(torch.randn(2, 1, 32, 32)).shape == (2, 5, 32, 32)
    assert "basicunet" not in available_models()  # not an SE architecture: not in the SE tables
    assert ModelConfig(name="BasicUNet", features=[8, 8, 16, 32, 64, 8]).name == "basicunet"
    with pytest.raises(ValueError, match="'se' is not an option of model 'basicunet'"):
        ModelConfig(name="basicunet", se="scse")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "vnet"}, "unknown model 'vnet'"),
        ({"name": "unet", "se": "pe", "spatial_dims": 2}, "3D volumes only"),
        ({"name": "unet", "se_positions": ["middle"]}, "se_positions may only contain"),
        ({"name": "unet", "se": "xse"}, "se must be one of"),
        ({"name": "sdnet", "norm": "group"}, "unknown norm"),
        ({"name": "densenet", "colour": "red"}, "'colour' is not an option of model 'densenet'"),
        ({"name": "unet", "base_feature": 8}, "did you mean 'base_features'"),
        ({"name": "unet", "spatial_dims": 1}, "spatial_dims must be 2 or 3"),
    ],
)
def test_bad_model_arguments_raise_clear_value_errors(kwargs: dict, message: str) -> None:
    args = {"name": "unet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        create_model(**args)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 1, 8, 40, 40), "at least 16"),
        ((1, 2, 32, 32, 32), "built for 1 channels"),
        ((1, 1, 32, 32), "expects a 5D input"),
    ],
)
def test_bad_network_input_raises_value_error(shape: tuple[int, ...], message: str) -> None:
    model = create_model("unet", 3, 1, 2, base_features=4)
    with pytest.raises(ValueError, match=message):
        model(torch.randn(shape))


def test_instance_norm_with_single_voxel_bottleneck_raises_value_error() -> None:
    model = create_model("unet", 3, 1, 2, base_features=4, norm="instance")
    with pytest.raises(ValueError, match="more than one voxel at the bottleneck"):
        model(torch.randn(1, 1, 17, 19, 21))
    assert model(torch.randn(1, 1, 17, 19, 33)).shape == (1, 2, 17, 19, 33)
