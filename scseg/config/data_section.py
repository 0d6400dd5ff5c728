"""The ``data`` section of a training config: where the cases are, which structures, which pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scseg.errors import ConfigError
from scseg.labels.hemispheres import pair_classes
from scseg.labels.label_set import read_label_set
from scseg.paths import expand_data_vars


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(Section):
    """An explicit split by case name (file name without extension, or DICOM folder name)."""

    train: list[str] = Field(min_length=1)
    val: list[str] = Field(min_length=1)


class DataConfig(Section):
    root: Path = Field(description="folder the dataset lives in (relative paths: to the config file)")
    dataset: str = Field(
        "auto",
        description="'auto' (dataset.json, else imagesTr/+labelsTr/ under root), or a dataset.json, a .csv "
        "of image,label[,name] rows, or a folder holding imagesTr/ and labelsTr/ (relative to root)",
    )
    label_names: list[str] | dict[int, str] = Field(
        description="foreground structure names in label order 1..K, or a {value: name} mapping"
    )
    label_set: Path | None = Field(
        None,
        description="a lookup table in FreeSurfer's format (one 'id name R G B A' line per structure; "
        "relative: to the config file) that gives label_names, label_values and colours instead",
    )
    lr_pairs: Literal["auto"] | list[tuple[str, str]] | None = Field(
        "auto",
        description="left / right structure pairs, swapped by left-right flips: 'auto' finds them from "
        "the names (names that agree apart from the side: Left-X/Right-X, ctx-lh-X/ctx-rh-X, X_L/X_R, LeftX/RightX, "
        "...), or a list of [left, right] names; "
        "null: none",
    )
    label_values: list[int] | None = Field(
        None,
        description="the value each named structure has in the label files (e.g. FreeSurfer or TotalSegmentator "
        "ids); they are remapped to 1..K and every other value to background. Default: 1..K as stored",
    )
    label_colours: list[tuple[int, int, int]] | None = Field(
        None, description="display RGB per structure (filled from label_set); default: scseg's palette"
    )
    label_codes: dict[str, str] | None = Field(
        None,
        description="how to code a structure the segment-code table cannot match by its name: "
        "{name: table name (e.g. Hippocampus-Anterior) or SCHEME:VALUE:Meaning}; see scseg/labels/codes.py",
    )
    annotated: str | None = Field(
        None,
        description="partial labels: which structures were annotated in which case. A CSV (relative to root) "
        "with a case column and one 0/1 column per structure (e.g. OpenKBP's contoured.csv), or 'nonempty' "
        "(a structure is annotated where it has voxels). Label 0 of an unannotated structure then means "
        "'unknown', not background: the loss does not punish predicting it there, and scseg evaluate scores "
        "it only where annotated. Default: every structure annotated in every case",
    )
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split: SplitConfig | None = None
    max_cases: int | None = Field(None, ge=2, description="use only the first N cases (smoke runs)")
    generate: Literal["phantom"] | None = Field(
        None, description="'phantom': write the synthetic demo data set into root first if it is not there"
    )
    cache: bool = Field(True, description="keep preprocessed volumes in memory (MONAI CacheDataset)")
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_label_set(cls, data: Any) -> Any:
        """Fill label_names / label_values from ``label_set``; when both are given they must agree
        (a stored run config keeps the names, so it still loads where the file is absent)."""
        if not isinstance(data, dict) or data.get("label_set") is None:
            return data
        path = Path(data["label_set"])
        if not path.is_file() and data.get("label_names") is not None:
            return data
        labels = read_label_set(path)
        data = dict(data)
        if data.get("label_colours") is None:
            data["label_colours"] = labels.colours
        for key, value in (("label_names", labels.names), ("label_values", labels.values)):
            given = data.get(key)
            if given is not None and list(given) != value:
                raise ConfigError(
                    f"data.{key} differs from the label set {path}; give one of them (the label set "
                    "lists each structure's id and name)"
                )
            data[key] = value
        return data

    @field_validator("label_names")
    @classmethod
    def _names(cls, v: list[str] | dict[int, str]) -> list[str] | dict[int, str]:
        values = list(v.keys()) if isinstance(v, dict) else list(range(1, len(v) + 1))
        names = list(v.values()) if isinstance(v, dict) else list(v)
        if not names:
            raise ValueError("give at least one foreground structure name")
        if 0 in values:
            raise ValueError("label value 0 is background; name only foreground values 1..K")
        if sorted(values) != list(range(1, len(values) + 1)):
            raise ValueError(f"label values must be 1..K without gaps, got {sorted(values)}")
        if len(set(names)) != len(names):
            raise ValueError(f"structure names must be unique, got {names}")
        return v

    @model_validator(mode="after")
    def _values_match_names(self) -> DataConfig:
        if self.label_values is not None:
            if len(self.label_values) != len(self.structure_names):
                raise ValueError(
                    f"label_values has {len(self.label_values)} entries but label_names names "
                    f"{len(self.structure_names)} structures; give one source value per name"
                )
            if len(set(self.label_values)) != len(self.label_values) or min(self.label_values) < 1:
                raise ValueError(f"label_values must be distinct positive values, got {self.label_values}")
        if self.label_colours is not None and len(self.label_colours) != len(self.structure_names):
            raise ValueError(
                f"label_colours has {len(self.label_colours)} entries for {len(self.structure_names)} structures"
            )
        unknown = sorted(set(self.label_codes or {}) - set(self.structure_names))
        if unknown:
            raise ValueError(f"label_codes names {unknown}, which are not in label_names")
        return self

    @property
    def structure_names(self) -> list[str]:
        """Foreground names ordered by label value 1..K."""
        if isinstance(self.label_names, dict):
            return [self.label_names[k] for k in sorted(self.label_names)]
        return list(self.label_names)

    @property
    def annotation_table(self) -> Path | None:
        """The ``annotated`` CSV's path (``None``: every structure annotated, or the ``nonempty`` rule)."""
        if self.annotated is None or self.annotated == "nonempty":
            return None
        path = Path(expand_data_vars(self.annotated))
        return path if path.is_absolute() else Path(self.root) / path

    @property
    def lr_classes(self) -> list[tuple[int, int]]:
        """The left / right pairs as (left class, right class), classes 1..K."""
        if self.lr_pairs is None:
            return []
        return pair_classes(self.structure_names, None if self.lr_pairs == "auto" else self.lr_pairs)
