"""Commands run as a user without root's powers, for the tests of permission faults.

The suite runs as root here and in CI, and root reads any file (CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH); with every capability dropped, file permissions apply to it again.
"""

from __future__ import annotations

import os
import shutil

import pytest


def unprivileged(command: list[str]) -> list[str]:
    """``command`` as a user without root's powers: as root, with every capability dropped
    (``CAP_DAC_OVERRIDE`` and ``CAP_DAC_READ_SEARCH`` let root read a ``chmod 0`` file)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        message = "setpriv (util-linux) is needed to drop root's capabilities"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *command]
