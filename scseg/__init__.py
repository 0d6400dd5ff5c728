"""scseg: 2D and 3D medical image segmentation with squeeze & excitation recalibration."""

__version__ = "0.1.0"
