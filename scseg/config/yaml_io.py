"""Reading YAML that may come from anywhere (a config, a model folder someone sent): safe and bounded.

``yaml.safe_load`` constructs no Python objects, but an "alias bomb" (anchors referring to anchors)
still expands to billions of nodes in whatever walks the result. Files are capped in size and in
alias count, so such a file is refused at once instead of hanging the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scseg.errors import ConfigError

MAX_YAML_BYTES = 4 * 1024 * 1024  # the largest shipped config is ~4 KB; a model.yaml ~2 KB
MAX_YAML_ALIASES = 1000  # configs use a handful at most


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents with more than :data:`MAX_YAML_ALIASES` aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (refused as an alias bomb)")
        return super().compose_node(parent, index)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text safely (plain values only, bounded aliases).

    Raises:
        ConfigError: malformed YAML or too many aliases, naming ``source``.
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: cannot read YAML: {err}") from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """Read and parse a YAML file no larger than :data:`MAX_YAML_BYTES`.

    Raises:
        ConfigError: missing, unreadable, too large or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(
                f"{path}: {size} bytes is too large for a YAML config or model file "
                f"(limit {MAX_YAML_BYTES // (1024 * 1024)} MiB)"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read it ({err})") from None
    return parse_yaml(text, str(path))
