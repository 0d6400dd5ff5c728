"""Dataset descriptions -> a list of cases, and the train/validation split.

Three layouts are understood: an MSD-style ``dataset.json`` (its ``training`` list), a CSV with
``image,label[,name]`` columns, and a folder holding ``imagesTr/`` and ``labelsTr/`` (nnU-Net's
``_0000`` channel suffix is accepted). An image is a NIfTI file or a folder holding one DICOM series.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from scseg.config.schema import DataConfig
from scseg.errors import DataError
from scseg.paths import expand_data_vars

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Case:
    """One labelled image. ``image`` is a NIfTI file or a DICOM series folder."""

    name: str
    image: Path
    label: Path

    def as_dict(self) -> dict[str, str]:
        """The MONAI dictionary form (``image``/``label`` paths plus ``name``)."""
        return {"image": str(self.image), "label": str(self.label), "name": self.name}


def case_name(path: str | Path) -> str:
    """File name without its NIfTI extension (and without nnU-Net's ``_0000`` channel suffix)."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[:-5] if name.endswith("_0000") else name


def _is_image(path: Path) -> bool:
    return path.is_dir() or path.name.endswith(NIFTI_SUFFIXES)


def _from_folders(folder: Path) -> list[Case]:
    images_dir, labels_dir = folder / "imagesTr", folder / "labelsTr"
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise DataError(
                f"dataset folder {folder} has no {d.name}/ folder (expected imagesTr/ and labelsTr/)"
            )
    labels = {case_name(p): p for p in sorted(labels_dir.iterdir()) if p.name.endswith(NIFTI_SUFFIXES)}
    cases = []
    for image in sorted(p for p in images_dir.iterdir() if _is_image(p) and not p.name.startswith(".")):
        name = case_name(image)
        if name not in labels:
            raise DataError(f"image {image} has no label in {labels_dir} (expected {name}.nii.gz)")
        cases.append(Case(name, image, labels[name]))
    return cases


def _from_msd_json(path: Path) -> list[Case]:
    try:
        entries = json.loads(path.read_text())["training"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not an MSD dataset.json with a 'training' list ({err})") from None
    base = path.parent
    cases = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise DataError(f"{path}: training[{i}] needs 'image' and 'label' entries, got {entry!r}")
        image = (base / entry["image"]).resolve()
        cases.append(Case(case_name(image), image, (base / entry["label"]).resolve()))
    return cases


def _from_csv(path: Path) -> list[Case]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise DataError(
            f"{path}: a dataset CSV needs a header with 'image' and 'label' columns (and optionally 'name')"
        )
    base = path.parent
    cases = []
    for row in rows:  # paths may use ${SCSEG_DATA}; relative ones are relative to the CSV
        image = (base / expand_data_vars(row["image"])).resolve()
        label = (base / expand_data_vars(row["label"])).resolve()
        cases.append(Case(row.get("name") or case_name(image), image, label))
    return cases


def discover_cases(data: DataConfig) -> list[Case]:
    """All labelled cases the config describes, checked to exist, in a stable order.

    Raises:
        DataError: unknown layout, a missing image or label file, duplicate names, or no cases.
    """
    root = Path(data.root)
    target = root if data.dataset == "auto" else root / data.dataset
    if data.dataset == "auto" and (root / "dataset.json").is_file():
        target = root / "dataset.json"
    if target.is_dir():
        cases = _from_folders(target)
    elif target.suffix == ".json" and target.is_file():
        cases = _from_msd_json(target)
    elif target.suffix == ".csv" and target.is_file():
        cases = _from_csv(target)
    else:
        raise DataError(
            f"data.dataset: {target} is neither a dataset.json, a .csv nor a folder with imagesTr/ and labelsTr/"
        )
    for case in cases:
        for kind, path in (("image", case.image), ("label", case.label)):
            if not path.exists():
                raise DataError(f"case {case.name!r}: {kind} file {path} does not exist")
    names = [c.name for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{target}: case names must be unique, repeated: {duplicates}")
    if not cases:
        raise DataError(f"{target}: the data set is empty (no image/label pairs found)")
    if data.max_cases is not None:
        cases = cases[: data.max_cases]
    return cases


def split_cases(cases: list[Case], data: DataConfig, seed: int) -> tuple[list[Case], list[Case]]:
    """Train/validation split: the explicit ``data.split`` names, or a seeded ``val_fraction`` shuffle."""
    if data.split is not None:
        by_name = {c.name: c for c in cases}
        missing = [n for n in [*data.split.train, *data.split.val] if n not in by_name]
        if missing:
            raise DataError(f"data.split names cases that do not exist: {missing[:10]}")
        return [by_name[n] for n in data.split.train], [by_name[n] for n in data.split.val]
    if len(cases) < 2:
        raise DataError(f"need at least 2 cases to split into training and validation, found {len(cases)}")
    order = list(cases)
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, round(len(order) * data.val_fraction)))
    return sorted(order[n_val:], key=lambda c: c.name), sorted(order[:n_val], key=lambda c: c.name)
