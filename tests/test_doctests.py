"""Every docstring example in scseg runs and shows what it claims (``>>>`` examples are tests)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import scseg

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(scseg.__path__, "scseg.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    if name.startswith("scseg.label.") and importlib.util.find_spec("monailabel") is None:
        pytest.skip("the label extra (monailabel) is not installed")
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples in {name} failed (output above)"
    )


def test_every_module_is_collected() -> None:
    assert "scseg.nn.registry" in MODULES and "scseg.artefact.layout" in MODULES and len(MODULES) > 50
