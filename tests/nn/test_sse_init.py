"""The sSE collapse, pinned (docs/results.md, "The sSE collapse").

The 2D DenseNet with sSE lost half its Dice at AdamW 3e-3 (0.43 vs 0.79 without SE, equal epochs).
It was optimisation, not a defect: a third of the learning rate, or gates initialised open, gave
0.79. These tests pin the mechanism (a closed gate passes almost no gradient, to its voxel's
features or to itself) and the remedy, ``se_sse_init="open"``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scseg.config import config_from_dict
from scseg.nn import create_model
from scseg.nn.blocks import ChannelSpatialSE, SpatialSE
from scseg.nn.blocks.spatial_se import OPEN_GATE_BIAS

SHAPES = {2: (2, 8, 9, 11), 3: (2, 8, 5, 7, 9)}


@pytest.mark.parametrize("dims", [2, 3])
def test_default_init_is_pytorchs_and_open_init_starts_as_the_identity(dims: int) -> None:
    torch.manual_seed(0)
    default = SpatialSE(dims, 8)
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(8, 1, 1) if dims == 2 else torch.nn.Conv3d(8, 1, 1)
    torch.testing.assert_close(default.conv.weight, plain.weight)  # the paper's (PyTorch's) init
    x = torch.randn(SHAPES[dims])
    assert default.gate(x).std() > 0.01, "default gates differ from voxel to voxel"

    opened = SpatialSE(dims, 8, init="open")
    open_gate = torch.sigmoid(torch.tensor(OPEN_GATE_BIAS))
    torch.testing.assert_close(opened.gate(x), torch.full_like(opened.gate(x), float(open_gate)))
    torch.testing.assert_close(opened(x), open_gate * x)
    assert open_gate > 0.98
    scse = ChannelSpatialSE(dims, 8, sse_init="open")
    torch.testing.assert_close(scse.sse.gate(x), opened.gate(x))
    with pytest.raises(ValueError, match="init"):
        SpatialSE(dims, 8, init="closed")


def test_a_closed_gate_starves_its_voxels_and_itself_of_gradient() -> None:
    """Gradient at a voxel is g (to the features) and g (1 - g) (to the gate's own logit): near 0
    for a closed gate, so nothing pulls it open again; an open gate passes the features' gradient."""
    sse = SpatialSE(2, 4)
    with torch.no_grad():
        sse.conv.weight.zero_()
        sse.conv.weight[0, 0] = 10.0  # the gate follows channel 0
        sse.conv.bias.zero_()
    x = torch.ones(1, 4, 2, 2)
    x[0, 0, 0, 0] = -1.0  # logit -10: closed (g = 4.5e-5)
    x[0, 0, 1, 1] = 0.0  # logit 0: g = 0.5, where sigmoid learns fastest
    x.requires_grad_(True)
    sse(x).sum().backward()
    grad = x.grad[0, 1:]  # channels 1-3: only the gate's value flows to them
    assert grad[:, 0, 0].abs().max() < 1e-4
    torch.testing.assert_close(grad[:, 1, 1], torch.full((3,), 0.5))

    def bias_grad_at(row: int, col: int) -> float:
        sse.zero_grad()
        sse(x.detach())[..., row, col].sum().backward()
        return float(sse.conv.bias.grad.abs())

    assert bias_grad_at(0, 0) < 1e-3 * bias_grad_at(1, 1)

    fresh = SpatialSE(2, 4, init="open")
    y = x.detach().clone().requires_grad_(True)
    fresh(y).sum().backward()
    assert (y.grad > 0.98).all(), "an open gate passes (almost) the whole gradient everywhere"


@pytest.mark.parametrize("arch", ["unet", "sdnet", "densenet", "resunet"])
@pytest.mark.parametrize("se", ["sse", "scse"])
def test_se_sse_init_reaches_every_spatial_gate_of_every_network(arch: str, se: str) -> None:
    net = create_model(arch, spatial_dims=2, in_channels=1, out_channels=3, se=se, se_sse_init="open")
    gates = [m for m in net.modules() if isinstance(m, SpatialSE)]
    assert gates and all(m.init == "open" and float(m.conv.bias.detach()) == OPEN_GATE_BIAS for m in gates)
    default = create_model(arch, spatial_dims=2, in_channels=1, out_channels=3, se=se)
    assert all(m.init == "default" for m in default.modules() if isinstance(m, SpatialSE))


def test_se_sse_init_from_yaml_and_its_refusals(tmp_path: Path) -> None:
    raw = {
        "data": {"root": str(tmp_path), "label_names": ["a"]},
        "mode": {"type": "2d", "patch_size": [32, 32]},
        "model": {"name": "densenet", "se": "sse", "se_sse_init": "open", "features": 8},
    }
    assert config_from_dict(raw).model.options()["se_sse_init"] == "open"
    raw["model"]["se_sse_init"] = "shut"
    with pytest.raises(Exception, match="se_sse_init"):
        config_from_dict(raw)
    with pytest.raises(ValueError, match="se_sse_init"):
        create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, se="sse", se_sse_init="shut")
    with pytest.raises(ValueError, match="se_sse_init"):
        create_model("unet", spatial_dims=3, in_channels=1, out_channels=2, se="pe", se_sse_init="open")
