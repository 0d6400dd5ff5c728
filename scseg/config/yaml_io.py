"""Reading YAML that may come from anywhere (a config, a model folder someone sent): safe and bounded.

``yaml.safe_load`` constructs no Python objects, but an "alias bomb" (anchors referring to anchors)
still expands to billions of nodes in whatever walks the result, and a few kilobytes of ``[`` nest
deeper than Python's recursion limit. Files are capped in size, in expanded values and in depth
(:mod:`scseg.limits`, each raisable by an environment variable), so such a file is refused at once
instead of hanging or crashing the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from scseg.errors import ConfigError
from scseg.limits import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents nested deeper than :data:`MAX_YAML_DEPTH` or whose aliases
    expand to more than :data:`MAX_YAML_NODES` values. Each composed node's expanded size is the sum
    of its children's, so an alias counts with the full size of what it refers to, and a bomb is
    caught while it is being read."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> expanded size (nodes live until loading ends)
        self._depth = 0
        self._max_depth = MAX_YAML_DEPTH.value()
        self._max_nodes = MAX_YAML_NODES.value()

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        self._depth += 1  # composing recurses once per level: counted before it goes deeper
        if self._depth > self._max_depth:
            raise yaml.YAMLError(
                MAX_YAML_DEPTH.refusal("lists or mappings nested in each other", self._depth)
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
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
        if size > self._max_nodes:
            raise yaml.YAMLError(
                MAX_YAML_NODES.refusal(
                    "values, each alias counted as what it refers to (an alias bomb?)", size
                )
            )
        return node


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text safely (plain values only, bounded aliases).

    Raises:
        ConfigError: malformed YAML, too many aliases or too deep, naming ``source``.
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: cannot read YAML: {err}") from None
    except RecursionError:  # SCSEG_MAX_YAML_DEPTH raised past what Python's stack holds
        raise ConfigError(
            f"{source}: cannot read YAML: it nests deeper than Python can parse; "
            f"{MAX_YAML_DEPTH.env} is set to {MAX_YAML_DEPTH.value():,}, more than this interpreter allows"
        ) from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """Read and parse a YAML file no larger than :data:`MAX_YAML_BYTES` (``SCSEG_MAX_YAML_BYTES``).

    Raises:
        ConfigError: missing, unreadable, too large or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES.value():
            raise ConfigError(
                MAX_YAML_BYTES.refusal(f"{path}: too large for a YAML config or model file", size)
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read it ({err})") from None
    return parse_yaml(text, str(path))
