"""The package's layering: no import cycles between its folders, and the CLI is a leaf."""

from __future__ import annotations

import ast
from pathlib import Path

import scseg

PACKAGE = Path(scseg.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> scseg modules it imports anywhere in its body (lazy imports count too);
    ``from scseg.cli import training`` counts as importing the submodule ``scseg.cli.training``."""
    paths = list(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        name = _module_name(path)
        graph[name] = {m for m in found if (m == "scseg" or m.startswith("scseg.")) and m != name}
    return graph


def _layer(module: str) -> str:
    """``scseg.engine.trainer`` -> ``engine``; top-level modules (errors, paths) are their own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "scseg"


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if state.get(start) is None and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_between_layers() -> None:
    layers: dict[str, set[str]] = {}
    for module, targets in _imports().items():
        source = _layer(module)
        layers.setdefault(source, set()).update(_layer(t) for t in targets if _layer(t) != source)
    assert _cycle(layers) is None, (
        f"import cycle between scseg's folders: {' -> '.join(_cycle(layers) or [])}"
    )


def test_no_import_cycle_between_modules() -> None:
    graph = _imports()
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_nothing_imports_the_cli() -> None:
    importers = sorted(
        m for m, targets in _imports().items()
        if not m.startswith(("scseg.cli", "scseg.__main__")) and any(t.startswith("scseg.cli") for t in targets)
    )  # fmt: skip
    assert importers == [], f"the CLI is a leaf, but {importers} import it"


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
