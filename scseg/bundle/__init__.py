"""MONAI bundle export of trained runs."""

from scseg.bundle.export import export_bundle

__all__ = ["export_bundle"]
