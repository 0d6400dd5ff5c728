"""SE-equipped segmentation networks: U-Net, SD-Net and a QuickNAT-style DenseNet (2D and 3D)."""

from scseg.nn.nets.densenet import DenseBlock, DenseNet
from scseg.nn.nets.encoder_decoder import SEEncoderDecoder
from scseg.nn.nets.layers import SE_POSITIONS, SEPlacement
from scseg.nn.nets.sdnet import SDNet
from scseg.nn.nets.unet import UNet

__all__ = ["SE_POSITIONS", "DenseBlock", "DenseNet", "SDNet", "SEEncoderDecoder", "SEPlacement", "UNet"]
