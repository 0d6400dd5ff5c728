"""SE-equipped segmentation networks: U-Net, SD-Net, a QuickNAT-style DenseNet and a residual U-Net
(2D and 3D)."""

from scseg.nn.nets.densenet import DenseBlock, DenseNet
from scseg.nn.nets.encoder_decoder import SEEncoderDecoder
from scseg.nn.nets.layers import SE_POSITIONS, SEPlacement
from scseg.nn.nets.resunet import ResUNet
from scseg.nn.nets.sdnet import SDNet
from scseg.nn.nets.unet import UNet

__all__ = [
    "SE_POSITIONS",
    "DenseBlock",
    "DenseNet",
    "ResUNet",
    "SDNet",
    "SEEncoderDecoder",
    "SEPlacement",
    "UNet",
]
