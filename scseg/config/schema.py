"""The validated schema of a training config: the one place that knows every key and its default.

Every section forbids unknown keys, so a typo is reported with its dotted path instead of being
silently ignored. Paths are resolved against the config file's folder by :mod:`scseg.config.load`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scseg.config.data_section import DataConfig, Section
from scseg.labels.hemispheres import merged_classes
from scseg.nn.registry import COMPOSITE_MODELS, check_model_options, create_model, model_class

SliceAxis = Literal["sagittal", "coronal", "axial"]
# RAS orientation: axis 0 = left-right (sagittal slices), 1 = posterior-anterior (coronal), 2 = inferior-superior (axial)
SLICE_AXIS_INDEX = {"sagittal": 0, "coronal": 1, "axial": 2}


DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def is_device_name(name: str) -> bool:
    """Whether ``name`` is a device scseg accepts: auto, cpu, cuda or cuda:N."""
    return re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(name).strip().lower()) is not None


class IntensityConfig(Section):
    kind: Literal["zscore", "ct_window", "ct_zscore", "none"] = "zscore"
    window: tuple[float, float] = Field(
        (-1000.0, 1000.0), description="ct_window: HU range mapped to [0, 1]; ct_zscore: HU range clipped to"
    )
    nonzero: bool = Field(
        True, description="zscore: statistics over nonzero voxels only (skull-stripped MRI)"
    )
    mean: float | None = Field(None, description="ct_zscore: the foreground's mean HU (nnU-Net's CT scheme)")
    std: float | None = Field(None, gt=0.0, description="ct_zscore: the foreground's HU standard deviation")

    @model_validator(mode="after")
    def _ct_statistics(self) -> IntensityConfig:
        if self.kind == "ct_zscore" and (self.mean is None or self.std is None):
            raise ValueError(
                "intensity: ct_zscore needs mean and std (the dataset's foreground HU statistics; "
                "`scseg plan` measures them)"
            )
        return self


class PreprocessingConfig(Section):
    orientation: str | None = Field("RAS", description="axis codes to reorient to, or null to keep")
    spacing: tuple[float, float, float] | None = Field(
        None, description="resample to this spacing in mm, or null"
    )
    intensity: IntensityConfig = IntensityConfig()
    crop_foreground: bool = Field(False, description="crop to the image's nonzero bounding box")


class ViewConfig(Section):
    """One view of a multi-view 2D model: its slicing axis, fusion weight and slice size."""

    axis: SliceAxis
    weight: float = Field(
        None,  # type: ignore[assignment]  (resolved from the axis below)
        gt=0.0,
        description="its share in the weighted mean of the views' probabilities (default: FastSurfer's, "
        "coronal 0.4, axial 0.4, sagittal 0.2: the sagittal view cannot tell the hemispheres apart)",
    )
    patch_size: list[int] | None = Field(
        None, description="in-plane slice size (2 values; default mode.patch_size)"
    )

    @model_validator(mode="after")
    def _default_weight(self) -> ViewConfig:
        if self.weight is None:
            self.weight = DEFAULT_VIEW_WEIGHTS[self.axis]
        return self


# FastSurfer's fusion weights: the sagittal view, blind to the hemispheres, counts half as much
DEFAULT_VIEW_WEIGHTS = {"coronal": 0.4, "axial": 0.4, "sagittal": 0.2}


class ModeConfig(Section):
    type: Literal["2d", "3d"] = "3d"
    slice_axis: SliceAxis = Field("coronal", description="2d: slicing direction (the paper: coronal)")
    views: list[ViewConfig] | None = Field(
        None,
        description="2d: train one model per view and fuse their probabilities (QuickNAT / FastSurfer); "
        "e.g. [{axis: coronal, weight: 0.4}, {axis: axial, weight: 0.4}, {axis: sagittal, weight: 0.2}]",
    )
    merge_lr_pairs: bool = Field(
        False,
        description="one class per left / right pair (data.lr_pairs): what a sagittal view learns, as it "
        "cannot tell the hemispheres apart; set for the sagittal view of a multi-view model",
    )
    patch_size: list[int] = Field(description="3d: patch (3 values); 2d: in-plane slice size (2 values)")
    samples_per_volume: int = Field(2, ge=1)
    pos_fraction: float = Field(0.67, ge=0.0, le=1.0, description="share of patches centred on foreground")

    @property
    def spatial_dims(self) -> int:
        return 2 if self.type == "2d" else 3

    @model_validator(mode="after")
    def _patch_rank(self) -> ModeConfig:
        if self.views is not None:
            if self.type != "2d" or not self.views:
                raise ValueError(
                    "mode.views: a multi-view model is a set of 2D models (mode.type: 2d, one view or more)"
                )
            axes = [v.axis for v in self.views]
            if len(set(axes)) != len(axes):
                raise ValueError(f"mode.views: each axis once, got {axes}")
            for view in self.views:
                if view.patch_size is not None and len(view.patch_size) != 2:
                    raise ValueError(
                        f"mode.views: {view.axis} patch_size needs 2 values, got {view.patch_size}"
                    )
        if len(self.patch_size) != self.spatial_dims:
            raise ValueError(
                f"patch_size needs {self.spatial_dims} values for mode {self.type}, got {self.patch_size}"
            )
        if min(self.patch_size) < 16:
            raise ValueError(f"patch_size values must be >= 16 (four 2x poolings), got {self.patch_size}")
        return self


class AugmentationConfig(Section):
    enabled: bool = True
    flip_prob: float = Field(0.5, ge=0.0, le=1.0)
    flip_axes: list[int] | Literal["lr"] | None = Field(
        None,
        description="spatial axes to flip (default: all), or 'lr': the left-right axis only (from "
        "preprocessing.orientation; none in sagittal slices), swapping data.lr_pairs",
    )
    affine_prob: float = Field(0.2, ge=0.0, le=1.0)
    rotate_degrees: float = Field(10.0, ge=0.0)
    scale: float = Field(0.1, ge=0.0, lt=1.0)
    intensity_prob: float = Field(0.5, ge=0.0, le=1.0)
    intensity_shift: float = Field(0.1, ge=0.0)
    intensity_scale: float = Field(0.1, ge=0.0)
    noise_std: float = Field(0.0, ge=0.0)


class ModelConfig(BaseModel):
    """The network: a registered architecture ``name`` plus its own options.

    Every key besides ``name``, ``spatial_dims`` and ``in_channels`` is passed to the
    architecture's constructor, whose signature and checks are the one declaration of what it
    takes (:func:`scseg.nn.model_options`); a model added with :func:`scseg.nn.register_model` is
    reachable from YAML the same way. Unset options keep the architecture's own defaults.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    name: str = Field("unet", description="a registered architecture: unet, sdnet, densenet, ...")
    spatial_dims: Literal[2, 3] | None = Field(None, description="defaults to the mode's; must agree with it")
    in_channels: int = Field(1, ge=1)

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        model_class(v)  # ValueError with a "did you mean" for an unknown name
        if v.lower() in COMPOSITE_MODELS:
            raise ValueError(f"{v!r} is assembled from trained views (mode.views), not trained as model.name")
        return v.lower()

    @model_validator(mode="after")
    def _known_options(self) -> ModelConfig:
        check_model_options(self.name, self.options())
        return self

    def options(self) -> dict[str, Any]:
        """The architecture's keyword arguments (everything but name, spatial_dims, in_channels);
        an option set to ``null`` is unset (the architecture's default applies)."""
        return {k: v for k, v in (self.model_extra or {}).items() if v is not None}


class LossConfig(Section):
    name: Literal["dice_ce", "weighted_ce_dice"] = "dice_ce"
    dice_weight: float = Field(1.0, ge=0.0)
    ce_weight: float = Field(1.0, ge=0.0)
    boundary_weight: float | None = Field(
        None,
        ge=0.0,
        description="weighted_ce_dice: extra weight on label boundaries (null: 2 x median class weight)",
    )


class OptimizerConfig(Section):
    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0.0)
    weight_decay: float = Field(1e-5, ge=0.0)
    momentum: float = Field(0.99, ge=0.0, lt=1.0)


class SchedulerConfig(Section):
    name: Literal["none", "cosine", "poly", "onecycle"] = "onecycle"
    warmup_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="onecycle: share of steps spent warming up"
    )
    poly_power: float = Field(0.9, gt=0.0)


class TrainConfig(Section):
    max_epochs: int = Field(100, ge=1)
    time_limit_minutes: float | None = Field(
        None, gt=0.0, description="stop cleanly (validate + save) after this long; the LR schedule spans it"
    )
    batch_size: int = Field(2, ge=1)
    val_interval: int = Field(1, ge=1)
    seed: int = 0
    amp: bool = Field(True, description="mixed precision on CUDA (ignored on CPU)")
    cpu_amp: bool = Field(
        False,
        description="2D only: bfloat16 autocast of the training forward on CPU, 1.5-2x faster steps "
        "on CPUs with native bf16 (AVX512-BF16 / AMX; docs/benchmarks.md); where bf16 is emulated it "
        "can be slower. Off by default because it changes the numerics; weights, optimizer and loss stay "
        "float32",
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    num_threads: int | None = Field(None, ge=1, description="CPU threads (default: all cores)")
    init_weights: Path | None = Field(
        None,
        description="fine-tuning: start from this model's weights (a run directory, bundle or .pt of the "
        "same network) instead of a random initialisation",
    )
    compile: bool = Field(
        False,
        description="torch.compile the training forward: 1.5x faster CPU steps after ~30 s of compiling "
        "(docs/benchmarks.md); worth it for long runs",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not is_device_name(v):
            raise ValueError(f"device must be {DEVICE_CHOICES}, got {v!r}")
        return v


class InferenceConfig(Section):
    roi_size: list[int] | None = Field(None, description="sliding-window size (default: the training patch)")
    overlap: float = Field(0.5, ge=0.0, lt=1.0)
    sw_batch_size: int = Field(4, ge=1)
    blend: Literal["gaussian", "constant"] = "gaussian"


def _model_key(message: str, options: dict[str, Any]) -> str:
    """The dotted key a network's own error is about (``model.se``), when it names one."""
    for key in sorted(options, key=len, reverse=True):
        if re.search(rf"\b{re.escape(key)}\b", message):
            return f"model.{key}"
    return "model"


class Config(Section):
    """A whole training config. See ``configs/*.yaml`` for commented examples."""

    data: DataConfig
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    mode: ModeConfig
    augmentation: AugmentationConfig = AugmentationConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    train: TrainConfig = TrainConfig()
    inference: InferenceConfig = InferenceConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        dims = self.mode.spatial_dims
        if self.model.spatial_dims is not None and self.model.spatial_dims != dims:
            raise ValueError(
                f"model.spatial_dims={self.model.spatial_dims} disagrees with mode.type={self.mode.type!r}; "
                "drop model.spatial_dims or make them agree"
            )
        self._check_network(dims)
        if self.train.cpu_amp and dims == 3:
            raise ValueError(
                "train.cpu_amp: bfloat16 training on CPU is for 2D models only; set it to false for this "
                "3D config. torch's CPU (oneDNN) bf16 Conv3d weight gradient is wrong on 2x2x2 feature "
                "maps, which 3D networks reach at their deepest level: a relative error up to 1e13, "
                "different on every run (benchmarks/cpu_bf16_gradients.py checks a torch build)"
            )
        aug = self.augmentation
        flips = aug.enabled and aug.flip_prob > 0 and aug.flip_axes != []
        if aug.flip_axes == "lr" and not any(
            c in "LR" for c in (self.preprocessing.orientation or "").upper()
        ):
            raise ValueError(
                "augmentation.flip_axes: 'lr' needs preprocessing.orientation (e.g. RAS) to know the left-right axis"
            )
        in_plane = self.mode.type == "3d" or self.mode.slice_axis != "sagittal"
        if flips and in_plane and self.data.lr_classes and self.lr_axis is None:
            raise ValueError(
                "data.lr_pairs: left-right flips must swap the left / right structures, and which axis is "
                "left-right is known only with preprocessing.orientation set (e.g. RAS); set it, or "
                "set augmentation.flip_axes, or data.lr_pairs: null"
            )
        if self.inference.roi_size is not None and len(self.inference.roi_size) != dims:
            raise ValueError(f"inference.roi_size needs {dims} values, got {self.inference.roi_size}")
        return self

    def _check_network(self, dims: int) -> None:
        """Build the network on PyTorch's meta device (no memory, no compute): its constructor checks
        its own options (e.g. ``se='pe'`` needs 3D), and it checks that the patch passes its poolings."""
        m = self.model
        try:
            with torch.device("meta"):
                net = create_model(m.name, dims, m.in_channels, self.num_classes, **m.options())
        except ValueError as err:
            raise ValueError(f"{_model_key(str(err), m.options())}: {err}") from None
        check = getattr(net, "check_input_size", None)
        if check is not None:
            try:
                check(self.mode.patch_size)
            except ValueError as err:
                raise ValueError(
                    f"mode.patch_size {self.mode.patch_size} does not fit model: {err}"
                ) from None

    @property
    def spatial_dims(self) -> int:
        return self.mode.spatial_dims

    @property
    def lr_axis(self) -> int | None:
        """The left-right axis of a training sample (no channel), from preprocessing.orientation:
        ``None`` when the orientation is kept as stored, or for sagittal 2D slices (no such axis)."""
        codes = (self.preprocessing.orientation or "").upper()
        axis = next((i for i, c in enumerate(codes) if c in "LR"), None)
        if axis is None or self.mode.type == "3d":
            return axis
        across = SLICE_AXIS_INDEX[self.mode.slice_axis]
        return None if axis == across else axis - (axis > across)

    @property
    def num_classes(self) -> int:
        """Output classes: background plus the named structures (one per pair with merge_lr_pairs)."""
        table = self.class_table
        return 1 + len(self.data.structure_names) if table is None else int(table.max()) + 1

    @property
    def class_table(self) -> Any:
        """With ``mode.merge_lr_pairs``: structure class (0..K) -> output class (a numpy array)."""
        if not self.mode.merge_lr_pairs:
            return None
        return merged_classes(1 + len(self.data.structure_names), self.data.lr_classes)

    @property
    def output_names(self) -> list[str]:
        """The output classes' names: a merged pair is ``Left-X+Right-X``."""
        names = self.data.structure_names
        table = self.class_table
        if table is None:
            return names
        merged: dict[int, list[str]] = {}
        for structure, out in enumerate(table[1:], start=1):
            merged.setdefault(int(out), []).append(names[structure - 1])
        return ["+".join(merged[c]) for c in sorted(merged)]

    @property
    def output_values(self) -> list[int]:
        """The value each output class gets in written label maps (a merged pair: its left value)."""
        values = list(self.data.label_values or range(1, len(self.data.structure_names) + 1))
        table = self.class_table
        if table is None:
            return values
        first: dict[int, int] = {}
        for structure, out in enumerate(table[1:], start=1):
            first.setdefault(int(out), values[structure - 1])
        return [first[c] for c in sorted(first)]

    def view_config(self, axis: str) -> Config:
        """The single-view 2D config of one of ``mode.views`` (the sagittal one merges the pairs)."""
        view = next(v for v in self.mode.views or [] if v.axis == axis)
        mode = self.mode.model_copy(
            update={
                "slice_axis": axis,
                "views": None,
                "patch_size": list(view.patch_size or self.mode.patch_size),
                "merge_lr_pairs": axis == "sagittal" and bool(self.data.lr_classes),
            }
        )
        return Config.model_validate({**self.model_dump(), "mode": mode.model_dump()})

    @property
    def roi_size(self) -> list[int]:
        return list(self.inference.roi_size or self.mode.patch_size)
