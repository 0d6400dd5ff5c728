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
MAX_YAML_NODES = 1_000_000  # values once every alias is expanded; a 98-label config has ~1,000


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents whose aliases expand to more than :data:`MAX_YAML_NODES`
    values. Each composed node's expanded size is the sum of its children's, so an alias counts
    with the full size of what it refers to, and a bomb is caught while it is being read."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> expanded size (nodes live until loading ends)

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        node = super().compose_node(parent, index)
        size = self._sizes.get(id(node))
        if size is None:
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            else:
                children = []
            size = 1 + sum(self._sizes.get(id(c), 1) for c in children)
            self._sizes[id(node)] = size
        if size > MAX_YAML_NODES:
            raise yaml.YAMLError(
                f"its aliases expand to more than {MAX_YAML_NODES:,} values (refused as an alias bomb)"
            )
        return node


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
