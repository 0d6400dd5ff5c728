"""The model artefact's description: everything inference needs, nothing about the training data.

A :class:`ModelSpec` is written by training as ``model.yaml`` beside the run's ``config.yaml`` (which
stays as the record of how the model was trained) and inside every checkpoint, so a run directory,
a bundle or a lone ``.pt`` file predicts on a machine that has never seen the training data. The
preprocessing and inference sections are the training config's own schema sections, rendered with
their defaults resolved, so inference replays exactly what training cached.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import monai
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scseg import __version__
from scseg.artefact.test_time import QualityControlSpec, TestTimeSpec, allowed_mirroring
from scseg.config.schema import (
    Config,
    InferenceConfig,
    PreprocessingConfig,
    SliceAxis,
)
from scseg.labels.codes import SegmentCode, segment_codes

FORMAT = "scseg-model/1"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NetworkSpec(_Section):
    """A registered architecture and the exact arguments it was built with."""

    name: str
    spatial_dims: Literal[2, 3]
    in_channels: int = Field(ge=1)
    out_channels: int = Field(ge=2, description="classes including background")
    options: dict[str, Any] = Field(default_factory=dict, description="architecture keyword arguments")


class ModeSpec(_Section):
    type: Literal["2d", "3d"]
    slice_axis: SliceAxis = Field("coronal", description="2d: the slicing direction the model was trained on")


class InferenceSpec(InferenceConfig):
    roi_size: list[int] = Field(description="sliding-window size (resolved: the training patch by default)")  # type: ignore[assignment]


class LabelSpec(_Section):
    names: list[str] = Field(min_length=1, description="foreground structures, in output channel order 1..K")
    values: list[int] = Field(description="the value each structure gets in written label maps")
    colours: list[tuple[int, int, int]] | None = Field(None, description="display RGB (from the label set)")
    codes: list[SegmentCode] | None = Field(
        None, description="DICOM codes (scseg.labels.codes), mapped from the names once, at training"
    )

    @model_validator(mode="after")
    def _same_length(self) -> LabelSpec:
        if len(self.values) != len(self.names):
            raise ValueError(f"labels: {len(self.names)} names but {len(self.values)} values")
        for key in ("colours", "codes"):
            given = getattr(self, key)
            if given is not None and len(given) != len(self.names):
                raise ValueError(f"labels: {len(self.names)} names but {len(given)} {key}")
        return self

    def segment_codes(self) -> list[SegmentCode]:
        """The stored codes; an artefact written before codes existed maps its names now."""
        return list(self.codes) if self.codes is not None else segment_codes(self.names)


class DataFingerprint(_Section):
    """What the model was trained on, without a path to it: for provenance and for spotting a model
    applied far from its training distribution."""

    dataset: str = Field(description="the training data folder's name")
    cases: int
    train_cases: int
    val_cases: int
    median_spacing: list[float] | None = Field(None, description="mm, over the training images")
    case_names_sha256: str = Field(description="hash of the sorted case names (which cases, not where)")


class Provenance(_Section):
    epoch: int | None = None
    validation_dice: dict[str, float] = Field(default_factory=dict)
    trained_at: str | None = None
    data: DataFingerprint | None = None


class ModelSpec(_Section):
    """The inference-only description of a trained model (``model.yaml``).

    Example:
        >>> from scseg.config import config_from_dict
        >>> cfg = config_from_dict({"data": {"root": ".", "label_names": ["a", "b"]},
        ...                         "mode": {"type": "3d", "patch_size": [32, 32, 32]}})
        >>> spec = ModelSpec.from_config(cfg)
        >>> spec.network.out_channels, spec.inference.roi_size, spec.labels.values
        (3, [32, 32, 32], [1, 2])
    """

    format: Literal["scseg-model/1"] = FORMAT
    network: NetworkSpec
    mode: ModeSpec
    preprocessing: PreprocessingConfig
    inference: InferenceSpec
    labels: LabelSpec
    versions: dict[str, str] = Field(default_factory=dict, description="scseg, MONAI, torch of the training")
    provenance: Provenance = Provenance()
    test_time: TestTimeSpec = Field(default_factory=TestTimeSpec, description="mirroring allowed by --tta")
    qc: QualityControlSpec | None = Field(None, description="set by `scseg evaluate --calibrate-qc`")

    @property
    def spatial_dims(self) -> int:
        return self.network.spatial_dims

    @property
    def num_classes(self) -> int:
        return self.network.out_channels

    @classmethod
    def from_config(cls, config: Config, provenance: Provenance | None = None) -> ModelSpec:
        """The spec of the model a training config describes."""
        names = config.output_names
        return cls(
            network=NetworkSpec(
                name=config.model.name,
                spatial_dims=config.spatial_dims,
                in_channels=config.model.in_channels,
                out_channels=config.num_classes,
                options=config.model.options(),
            ),
            mode=ModeSpec(type=config.mode.type, slice_axis=config.mode.slice_axis),
            preprocessing=config.preprocessing,
            inference=InferenceSpec(**{**config.inference.model_dump(), "roi_size": config.roi_size}),
            labels=LabelSpec(
                names=names,
                values=config.output_values,
                colours=config.data.label_colours if config.class_table is None else None,
                codes=segment_codes(names, config.data.label_codes),
            ),
            versions=current_versions(),
            provenance=provenance or Provenance(),
            test_time=allowed_mirroring(config),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML values (what ``model.yaml`` and checkpoints store)."""
        return self.model_dump(mode="json")


def current_versions() -> dict[str, str]:
    return {"scseg": __version__, "monai": monai.__version__, "torch": torch.__version__.split("+")[0]}


def fingerprint(
    dataset: str,
    train_names: Sequence[str],
    val_names: Sequence[str],
    spacings: Sequence[Sequence[float]] = (),
) -> DataFingerprint:
    """A :class:`DataFingerprint` of a split: counts, median spacing, a hash of the case names."""
    names = sorted([*train_names, *val_names])
    median = None
    if spacings:
        median = [float(v) for v in torch.tensor([list(s) for s in spacings]).median(dim=0).values]
    return DataFingerprint(
        dataset=dataset,
        cases=len(names),
        train_cases=len(train_names),
        val_cases=len(val_names),
        median_spacing=median,
        case_names_sha256=hashlib.sha256("\n".join(names).encode()).hexdigest(),
    )


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
