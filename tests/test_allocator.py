"""The ``scseg`` command preloads tcmalloc when it is installed (and not when told not to)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scseg.allocator import tcmalloc_library


def _version(console_script: bool = False, **env: str) -> str:
    command = (
        [str(Path(sys.executable).with_name("scseg"))] if console_script else [sys.executable, "-m", "scseg"]
    )
    result = subprocess.run(
        [*command, "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(
    tcmalloc_library() is None, reason="tcmalloc is not installed (scripts/setup.sh installs it where it can)"
)
def test_the_command_runs_with_tcmalloc_when_installed() -> None:
    assert "allocator: tcmalloc" in _version()
    assert "allocator: tcmalloc" in _version(console_script=True)  # the installed `scseg` command
    assert "allocator: system" in _version(SCSEG_ALLOCATOR="system")


def test_without_tcmalloc_the_system_allocator_is_used() -> None:
    assert "allocator: system" in _version(SCSEG_ALLOCATOR="system", LD_PRELOAD="")
