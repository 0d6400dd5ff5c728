"""Reading a YAML config: safe load, ``--set key.path=value`` overrides, validation, clear errors."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from scseg.config.schema import Config
from scseg.config.yaml_io import parse_yaml, read_yaml
from scseg.errors import ConfigError
from scseg.paths import expand_data_vars


def _format_validation_error(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see configs/*.yaml for the valid keys)"
        elif "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], dict):
            msg = f"{msg} (got {e['input']!r})"
        if e["type"] == "value_error" and not e["loc"]:  # a cross-section check: its message names the keys
            lines.append(f"  {msg.removeprefix('Value error, ')}")
            continue
        lines.append(f"  {key}: {msg}")
    return f"{source}: invalid config\n" + "\n".join(lines)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.max_epochs=5"`` -> (["train", "max_epochs"], 5); values are parsed as YAML scalars/lists."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set train.max_epochs=5")
    key, _, raw = item.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"--set {item!r}: empty key")
    value = parse_yaml(raw, f"--set {item!r}: the value") if raw.strip() else None
    return path, value


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    """Apply ``--set`` overrides to a raw config dict (in place) and return it."""
    for item in overrides:
        path, value = parse_override(item)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return raw


def _resolve_paths(raw: dict, base: Path) -> None:
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("root"), str):
        root = Path(expand_data_vars(data["root"])).expanduser()
        data["root"] = str(root if root.is_absolute() else (base / root).resolve())
    if isinstance(data, dict) and isinstance(data.get("label_set"), str):
        table = Path(expand_data_vars(data["label_set"])).expanduser()
        data["label_set"] = str(table if table.is_absolute() else (base / table).resolve())
    train = raw.get("train")
    if isinstance(train, dict) and isinstance(train.get("init_weights"), str):
        weights = Path(expand_data_vars(train["init_weights"])).expanduser()
        train["init_weights"] = str(weights if weights.is_absolute() else (base / weights).resolve())


def config_from_dict(
    raw: dict, source: str = "<config>", base: Path | None = None, check_data: bool = True
) -> Config:
    """Validate a raw dict; relative ``data.root`` is resolved against ``base``.

    ``check_data=False`` skips the check that ``data.root`` exists (reading the record of a training
    that ran elsewhere).
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the config must be a YAML mapping of sections, got {type(raw).__name__}"
        )
    _resolve_paths(raw, base or Path.cwd())
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(source, err)) from None
    if check_data and config.data.generate is None and not config.data.root.is_dir():
        raise ConfigError(f"{source}: data.root: folder {config.data.root} does not exist")
    return config


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read, override and validate a YAML training config.

    Raises:
        ConfigError: missing/unreadable file, bad YAML, unknown key, wrong type or missing data
            folder; the message names the file and the dotted key.

    Example:
        >>> cfg = load_config("configs/hippocampus_3d.yaml", ["train.max_epochs=2"])  # doctest: +SKIP
    """
    path = Path(path)
    return config_from_dict(read_raw_config(path, overrides), str(path), path.parent)


def read_raw_config(path: Path, overrides: Iterable[str] = ()) -> dict:
    """The YAML mapping of a config file with ``--set`` overrides applied, not yet validated."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    raw = read_yaml(path) or {}
    if isinstance(raw, dict):
        apply_overrides(raw, overrides)
    return raw


def dump_config(config: Config) -> str:
    """The resolved config as YAML (what the run directory stores)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
