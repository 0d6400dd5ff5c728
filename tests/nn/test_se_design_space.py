"""The SE design space of SE-Nets: cSE squeeze and gate options, the five integrations of an SE
block in a residual unit, the residual U-Net, and the fused CPU kernels with the new options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scseg.config import config_from_dict
from scseg.nn import create_model
from scseg.nn.blocks import INTEGRATIONS, ChannelSE, ChannelSpatialSE, SEResidualBlock, gate_kernels
from scseg.nn.blocks.channel_se import GATES, SQUEEZES
from tests.nn.test_gate_kernels import _block_outputs_and_grads

SHAPES = {2: (2, 8, 9, 11), 3: (2, 8, 5, 7, 9)}


def _mlp(cse: ChannelSE, z: torch.Tensor) -> torch.Tensor:
    return cse.fc2(torch.relu(cse.fc1(z)))


@pytest.mark.parametrize("dims", [2, 3])
def test_channel_se_squeeze_and_gate_options(dims: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(SHAPES[dims])
    axes = tuple(range(2, x.dim()))
    view = (*x.shape[:2], *[1] * dims)
    cse = ChannelSE(dims, 8, squeeze="max")
    torch.testing.assert_close(cse(x), x * torch.sigmoid(_mlp(cse, x.amax(dim=axes))).view(view))
    both = ChannelSE(dims, 8, squeeze="avgmax")
    summed = _mlp(both, x.mean(dim=axes)) + _mlp(both, x.amax(dim=axes))
    torch.testing.assert_close(both.gate(x), torch.sigmoid(summed).view(view))
    for gate, fn in (("tanh", torch.tanh), ("relu", torch.relu)):
        block = ChannelSE(dims, 8, gate=gate)
        torch.testing.assert_close(block.gate(x), fn(_mlp(block, x.mean(dim=axes))).view(view))
    assert (ChannelSE(dims, 8, gate="tanh").gate(x) < 0).any(), "a tanh gate can flip a channel's sign"
    with pytest.raises(ValueError, match="squeeze"):
        ChannelSE(dims, 8, squeeze="median")
    with pytest.raises(ValueError, match="gate"):
        ChannelSE(dims, 8, gate="softmax")


class _Doubler(nn.Module):
    """Stands in for the SE block: records what it is given and doubles it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.detach().clone()
        return 2 * x


def _unit(
    dims: int, integration: str, block: str = "basic", cin: int = 8, cout: int = 8
) -> tuple[SEResidualBlock, _Doubler]:
    torch.manual_seed(0)
    unit = SEResidualBlock(dims, cin, cout, block=block, se="cse", integration=integration).eval()
    probe = _Doubler()
    if integration == "3x3":
        index = [i for i, m in enumerate(unit.residual) if isinstance(m, ChannelSE)]
        assert len(index) == 1
        unit.residual[index[0]] = probe
    else:
        unit.se = probe
    return unit, probe


@pytest.mark.parametrize("dims", [2, 3])
def test_each_integration_puts_se_where_se_nets_put_it(dims: int) -> None:
    x = torch.randn(SHAPES[dims])
    relu = torch.relu
    with torch.no_grad():
        unit, probe = _unit(dims, "standard")
        residual = unit.residual(x)
        torch.testing.assert_close(unit(x), relu(2 * residual + x))
        torch.testing.assert_close(probe.seen, residual)

        unit, probe = _unit(dims, "pre")  # SE-PRE gates the block's input, the identity keeps x
        out = unit(x)
        torch.testing.assert_close(probe.seen, x)
        torch.testing.assert_close(out, relu(unit.residual(2 * x) + x))

        unit, probe = _unit(dims, "post")  # SE-POST: after the sum and its ReLU
        after_sum = relu(unit.residual(x) + x)
        torch.testing.assert_close(unit(x), 2 * after_sum)
        torch.testing.assert_close(probe.seen, after_sum)

        unit, probe = _unit(dims, "identity")  # SE-Identity scales the identity path
        torch.testing.assert_close(unit(x), relu(unit.residual(x) + 2 * x))
        torch.testing.assert_close(probe.seen, x)

        unit, probe = _unit(dims, "identity", cin=8, cout=12)  # a projection shortcut: SE after it
        torch.testing.assert_close(unit(x), relu(unit.residual(x) + 2 * unit.shortcut(x)))

        unit, probe = _unit(dims, "3x3", block="bottleneck", cin=8, cout=16)
        unit(x)
        first_3x3 = unit.residual[1](unit.residual[0](x))  # 1x1 down, then the 3x3 (SE after it)
        torch.testing.assert_close(probe.seen, first_3x3)
        assert probe.seen.shape[1] == 4, "inside the bottleneck, at its inner width"


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_resunet_builds_every_se_kind_and_integration(dims: int, block: str) -> None:
    x = torch.randn(2, 1, *([32] * dims))
    for se in ("none", "cse", "sse", "scse"):
        for integration in INTEGRATIONS:
            net = create_model(
                "resunet", dims, 1, 3, features=[8] * 5, blocks_per_stage=1, block=block, se=se,
                se_integration=integration, se_reduction=2,
            )  # fmt: skip
            se_blocks = [
                m for m in net.modules() if type(m).__name__ in ("ChannelSE", "SpatialSE", "ChannelSpatialSE")
            ]
            assert (len(se_blocks) > 0) == (se != "none"), (se, integration)
            if se == "scse":  # one per residual unit: 4 encoder stages + bottleneck + 4 decoder stages
                assert len([m for m in se_blocks if isinstance(m, ChannelSpatialSE)]) == 9
            assert net(x).shape == (2, 3, *([32] * dims))


def test_resunet_se_positions_and_configs(tmp_path) -> None:
    net = create_model(
        "resunet", 2, 1, 3, base_features=4, se="cse", se_positions=["decoder"], blocks_per_stage=2
    )
    decoder_se = [m for m in net.decoders.modules() if isinstance(m, ChannelSE)]
    assert len(decoder_se) == 8 and not [m for m in net.encoders.modules() if isinstance(m, ChannelSE)]
    raw = {
        "data": {"root": str(tmp_path), "label_names": ["a"]},
        "mode": {"type": "2d", "patch_size": [64, 64]},
        "model": {"name": "resunet", "se": "scse", "se_integration": "pre", "se_squeeze": "avgmax",
                  "se_gate": "tanh", "block": "bottleneck", "base_features": 8},
    }  # fmt: skip
    config = config_from_dict(raw)
    assert config.model.options()["se_integration"] == "pre"
    raw["model"]["se_integration"] = "sideways"
    with pytest.raises(Exception, match="integration"):
        config_from_dict(raw)
    unet = create_model("unet", 3, 1, 2, base_features=4, se="scse", se_squeeze="max", se_gate="relu")
    assert {m.cse.squeeze for m in unet.modules() if isinstance(m, ChannelSpatialSE)} == {"max"}


@pytest.fixture
def fused(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setattr(gate_kernels, "MIN_ELEMENTS", 0)
    monkeypatch.delenv(gate_kernels.ENV, raising=False)
    return gate_kernels._compiled


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("squeeze", SQUEEZES)
def test_fused_training_kernels_cover_the_gates_and_fall_back_for_other_squeezes(
    fused: dict, monkeypatch: pytest.MonkeyPatch, squeeze: str, gate: str
) -> None:
    """Every option trains to the same values and gradients as the plain formula; the fused
    kernels run for the average squeeze (any gate), the autograd path for the others."""
    torch.manual_seed(0)
    block = ChannelSpatialSE(3, 8, aggregation="max", squeeze=squeeze, gate=gate)
    x, grad = torch.randn(SHAPES[3]), torch.randn(SHAPES[3])
    fused.clear()
    got = _block_outputs_and_grads(block, x, grad)
    assert bool(fused) == (squeeze == "avg"), "fused kernels only for the channel-mean squeeze"
    monkeypatch.setenv(gate_kernels.ENV, "eager")
    x_ref = x.clone().requires_grad_()
    block.zero_grad()
    reference = torch.maximum(x_ref * block.cse.gate(x_ref), x_ref * block.sse.gate(x_ref))
    reference.backward(grad)
    want = [reference.detach(), x_ref.grad, *(p.grad for p in block.parameters())]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
