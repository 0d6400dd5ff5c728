"""Networks: squeeze & excitation blocks, SE-equipped architectures and :func:`create_model`.

Example:
    >>> import torch
    >>> from scseg.nn import create_model
    >>> net = create_model("unet", spatial_dims=2, in_channels=1, out_channels=3, se="scse")
    >>> net(torch.randn(1, 1, 64, 48)).shape
    torch.Size([1, 3, 64, 48])
"""

from scseg.nn.blocks import (
    SCSE_AGGREGATIONS,
    SE_KINDS,
    ChannelSE,
    ChannelSpatialSE,
    ProjectExcite,
    SpatialSE,
    se_block,
)
from scseg.nn.ensemble import EnsembleNetwork
from scseg.nn.multiview import MultiViewNetwork
from scseg.nn.nets import SE_POSITIONS, DenseNet, SDNet, SEEncoderDecoder, UNet
from scseg.nn.registry import MODEL_REGISTRY, available_models, create_model, register_model
from scseg.nn.summary import count_parameters, model_sizes

__all__ = [
    "MODEL_REGISTRY",
    "SCSE_AGGREGATIONS",
    "SE_KINDS",
    "SE_POSITIONS",
    "ChannelSE",
    "ChannelSpatialSE",
    "DenseNet",
    "EnsembleNetwork",
    "MultiViewNetwork",
    "ProjectExcite",
    "SDNet",
    "SEEncoderDecoder",
    "SpatialSE",
    "UNet",
    "available_models",
    "count_parameters",
    "create_model",
    "model_sizes",
    "register_model",
    "se_block",
]
