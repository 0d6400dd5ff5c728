"""What a model may be mirrored along at test time, and its calibrated quality-control threshold.

Mirroring at test time (nnU-Net's test-time augmentation) is only sound along the axes training
mirrored: a model that never saw an anterior-posterior flip (it would swap the anterior and
posterior hippocampus) must not be shown one. Training knows those axes; this module turns them
into volume axes of the preprocessed grid and stores them in the model artefact, with the class
permutation a left-right mirror needs where the label set has left / right pairs.

Example:
    >>> from scseg.config import config_from_dict
    >>> cfg = config_from_dict({"data": {"root": ".", "label_names": ["Left-Hippocampus", "Right-Hippocampus"]},
    ...                         "preprocessing": {"orientation": "RAS"},
    ...                         "mode": {"type": "3d", "patch_size": [16, 16, 16]},
    ...                         "augmentation": {"flip_axes": "lr"}}, check_data=False)
    >>> spec = allowed_mirroring(cfg)
    >>> spec.mirror_axes, spec.lr_axis, spec.lr_swap
    ([0], 0, [0, 2, 1])
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from scseg.config.schema import SLICE_AXIS_INDEX, Config
from scseg.labels.hemispheres import swap_table


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TestTimeSpec(_Section):
    """Mirroring allowed at test time (``scseg predict --tta``)."""

    __test__ = False  # not a pytest test class despite its name

    mirror_axes: list[int] = Field(
        default_factory=list, description="axes (0-2) of the preprocessed volume that training mirrored along"
    )
    lr_axis: int | None = Field(None, description="the preprocessed volume's left-right axis, if known")
    lr_swap: list[int] | None = Field(
        None, description="output class -> class after a left-right mirror (left / right pairs swapped)"
    )


class QualityControlSpec(_Section):
    """A case is flagged when a structure's uncertainty exceeds ``threshold`` (calibrated on validation)."""

    threshold: float = Field(ge=0.0, le=1.0)
    passes: str = Field(description="what the uncertainty was measured from when calibrated, e.g. 'tta'")
    dice_cutoff: float = Field(description="a structure with a lower Dice counted as a failure")
    cases: int = Field(description="validation cases calibrated on")
    correlation: float | None = Field(None, description="Spearman rank correlation of uncertainty and Dice")
    sensitivity: float | None = Field(None, description="share of failures flagged on the validation cases")
    false_alarms: float | None = Field(None, description="share of good structures flagged")
    expected: list[str] = Field(
        default_factory=list,
        description="structures present in every validation reference: a prediction without one is flagged",
    )


def _trained_mirrors(config: Config) -> set[int]:
    """Volume axes that training's augmentation mirrored along."""
    aug = config.augmentation
    if not aug.enabled or aug.flip_prob == 0:
        return set()
    if aug.flip_axes == "lr":
        sample_axes = [] if config.lr_axis is None else [config.lr_axis]
    else:
        sample_axes = list(aug.flip_axes) if aug.flip_axes is not None else list(range(config.spatial_dims))
    if config.spatial_dims == 3:
        return set(sample_axes)
    across = SLICE_AXIS_INDEX[config.mode.slice_axis]
    in_plane = [d for d in range(3) if d != across]
    return {in_plane[a] for a in sample_axes}


def volume_lr_axis(config: Config) -> int | None:
    """The left-right axis of the preprocessed volume (``None``: orientation kept as stored)."""
    codes = (config.preprocessing.orientation or "").upper()
    return next((i for i, c in enumerate(codes) if c in "LR"), None)


def allowed_mirroring(config: Config) -> TestTimeSpec:
    """The mirroring a model trained from ``config`` allows.

    A multi-view model may be mirrored along an axis every view allows; for a 2D view, mirroring
    across its slices only reorders them, so its slicing axis is always allowed.
    """
    if config.mode.views:
        allowed: set[int] | None = None
        for view in config.mode.views:
            view_config = config.view_config(view.axis)
            axes = _trained_mirrors(view_config) | {SLICE_AXIS_INDEX[view.axis]}
            allowed = axes if allowed is None else allowed & axes
        mirrors = allowed or set()
        merged = False
    else:
        mirrors = _trained_mirrors(config)
        merged = config.class_table is not None
    lr_axis = volume_lr_axis(config)
    pairs = config.data.lr_classes
    swap = None
    if pairs and not merged and lr_axis in mirrors:
        swap = [int(c) for c in swap_table(1 + len(config.data.structure_names), pairs)]
    return TestTimeSpec(mirror_axes=sorted(mirrors), lr_axis=lr_axis, lr_swap=swap)
