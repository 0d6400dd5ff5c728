"""The cells of ``scseg ablate``: one architecture x SE kind x dimensionality [x seed] [x a swept
option], and the config each one trains with."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path

from scseg.config import Config, config_from_dict
from scseg.config.load import apply_overrides
from scseg.config.schema import SLICE_AXIS_INDEX
from scseg.errors import ConfigError
from scseg.nn.registry import MODEL_REGISTRY, model_options, shared_options

STRUCTURAL_KEYS = ("name", "spatial_dims", "in_channels")
SAMPLES_PER_VOLUME_2D = 8  # 2D cells derived from a 3D config draw this many slices per volume


@dataclass
class Cell:
    dims: int
    arch: str
    se: str
    seed: int | None = None  # None: the config's seed (and no suffix in the name)
    variant: str | None = None  # one swept option, ``model.se_reduction=4``
    # a swept value the cell has anyway (its default): trained and named as the plain cell, tabled
    # as ``model.se_reduction=2 (default)``
    default_variant: str | None = None

    @property
    def name(self) -> str:
        name = f"{self.dims}d_{self.arch}_{self.se}"
        if self.variant:
            key, _, value = self.variant.partition("=")
            name += f"_{key.rsplit('.', 1)[-1]}-{value}"
        return name + (f"_s{self.seed}" if self.seed is not None else "")


def cell_config(raw: dict, cell: Cell, time_limit_minutes: float | None, epochs: int | None = None) -> dict:
    """The config of one cell: ``raw`` with the architecture, SE kind, dimensionality, seed, swept
    option and budget (a time limit, or a fixed number of epochs) set.

    A 2D cell from a 3D config slices along ``mode.slice_axis`` (coronal by default) with the
    patch's in-plane size; a 3D cell needs a 3D config.
    """
    raw = copy.deepcopy(raw)
    model = raw.setdefault("model", {})
    source_arch = model.get("name", "unet")
    if source_arch != cell.arch:  # keep only the options that mean the same in the cell's architecture
        keep = shared_options(source_arch, cell.arch)
        for key in [k for k in model if k not in STRUCTURAL_KEYS and k not in keep]:
            del model[key]
    model.update(name=cell.arch, se=cell.se)
    model.pop("spatial_dims", None)
    mode = raw.setdefault("mode", {})
    config_dims = 3 if mode.get("type", "3d") == "3d" else 2
    if cell.dims != config_dims:
        if config_dims == 2:
            raise ConfigError(
                "ablation with --dims 3 needs a 3D config (mode.type: 3d) to take the patch size from"
            )
        patch = list(mode["patch_size"])
        del patch[SLICE_AXIS_INDEX[mode.get("slice_axis", "coronal")]]
        mode.update(type="2d", patch_size=patch)
        mode["samples_per_volume"] = max(int(mode.get("samples_per_volume", 1)), SAMPLES_PER_VOLUME_2D)
    train = raw.setdefault("train", {})
    if epochs is not None:  # the same epochs for every cell: validated once, at the end
        train.update(max_epochs=epochs, time_limit_minutes=None, val_interval=epochs)
    else:
        train["time_limit_minutes"] = time_limit_minutes
    if cell.seed is not None:
        train["seed"] = cell.seed
    if cell.variant:
        apply_overrides(raw, [cell.variant])
    return raw


def study_cells(
    raw: dict,
    base: Path,
    dims: list[int],
    archs: list[str],
    kinds: list[str],
    seeds: list[int] | None,
    vary: str | None,
    time_limit_minutes: float | None,
    epochs: int | None,
) -> list[Cell]:
    """The cells of a study, each config validated (fail fast, before hours of training).

    A swept value that a cell has anyway (``model.se_reduction=2`` where 2 is the architecture's
    default) is the plain cell, not a copy of it: it is trained once and shared with the main table.

    Raises:
        ConfigError: a malformed ``vary``, or a cell whose config is invalid (e.g. pe in 2D).
    """
    variants = swept_values(vary, archs)
    seed_list: list[int | None] = list(seeds) if seeds else [None]
    cells: list[Cell] = []
    seen: set[str] = set()
    combos = [
        (d, a, s, seed, variant)
        for d in dims
        for a in archs
        for s in kinds
        for variant in (variants[a] if s != "none" else [None])
        for seed in seed_list
    ]
    for combo in combos:
        cell = Cell(*combo)
        try:
            effective = _effective(
                config_from_dict(cell_config(raw, cell, time_limit_minutes, epochs), cell.name, base)
            )
            if cell.variant is not None:
                plain = dataclasses.replace(cell, variant=None)
                config = cell_config(raw, plain, time_limit_minutes, epochs)
                if _effective(config_from_dict(config, plain.name, base)) == effective:
                    cell = dataclasses.replace(plain, default_variant=cell.variant)
        except ConfigError as err:
            raise ConfigError(f"ablation cell {cell.name}: {err}") from None
        if cell.name not in seen:  # a value listed twice, or a default and its explicit spelling
            seen.add(cell.name)
            cells.append(cell)
    return cells


def swept_values(vary: str | None, archs: list[str]) -> dict[str, list[str | None]]:
    """Each architecture's swept settings (``model.se_reduction=4``) from ``--vary KEY=V1,V2,...``.

    A value written ``ARCH:VALUE`` is that architecture's only (``train.max_epochs=unet:816,
    resunet:840``: each architecture's own epochs, one table), unused when ARCH is not in the study
    (one ``--vary`` serves a run of each architecture and the table of all); the other values are
    every one's. Without ``vary``, every architecture has the one unswept setting, None.

    Raises:
        ConfigError: a malformed ``vary``, or an architecture of the study left with no value.
    """
    if not vary:
        return {a: [None] for a in archs}
    key, sep, values = vary.partition("=")
    if not sep or not key or not values:
        raise ConfigError(f"--vary {vary!r}: expected KEY=V1,V2,... (e.g. model.se_reduction=2,4,8,16)")
    swept: dict[str, list[str | None]] = {a: [] for a in archs}
    for value in filter(None, values.split(",")):
        arch, colon, own = value.partition(":")
        if colon and arch in MODEL_REGISTRY:
            if arch in swept:
                swept[arch].append(f"{key}={own}")
        else:  # only an architecture's name makes a prefix: any other colon is the value's
            for target in archs:
                swept[target].append(f"{key}={value}")
    if missing := [a for a in archs if not swept[a]]:
        raise ConfigError(
            f"--vary {vary!r}: no value for {', '.join(missing)}; give every architecture of the study a "
            f"value (ARCH:VALUE for one architecture's own, e.g. {missing[0]}:VALUE, or a plain VALUE for all)"
        )
    return swept


def _effective(config: Config) -> dict:
    """``config`` as a dict with the architecture's defaults filled in for unset model options, so
    that two configs that train the same network compare equal."""
    dumped = config.model_dump()
    defaults = {
        k: p.default
        for k, p in model_options(config.model.name).items()
        if p.default is not inspect.Parameter.empty
    }
    dumped["model"] = {**defaults, **{k: v for k, v in dumped["model"].items() if v is not None}}
    return dumped
