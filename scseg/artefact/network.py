"""The network of a model artefact, built and loaded (shared by training, prediction and export)."""

from __future__ import annotations

import torch
from torch import nn

from scseg.artefact.spec import NetworkSpec
from scseg.errors import RunDirError
from scseg.nn import create_model


def build_network(spec: NetworkSpec) -> nn.Module:
    """The untrained network a :class:`NetworkSpec` describes.

    Example:
        >>> net = build_network(NetworkSpec(name="unet", spatial_dims=2, in_channels=1, out_channels=3,
        ...                                 options={"base_features": 4}))
        >>> type(net).__name__
        'UNet'
    """
    try:
        return create_model(spec.name, spec.spatial_dims, spec.in_channels, spec.out_channels, **spec.options)
    except ValueError as err:
        raise RunDirError(f"the model description cannot be built: {err}") from None


def load_network(spec: NetworkSpec, weights: dict[str, torch.Tensor], source: str) -> nn.Module:
    """The network with ``weights`` loaded (strict), in eval mode on the CPU.

    Raises:
        RunDirError: the weights do not fit the described network (``source`` names the file).
    """
    net = build_network(spec)
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise RunDirError(f"{source} does not hold weights for the model it describes ({err})") from None
    return net.eval()
