"""The ``scseg`` command line."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from scseg.cli import app
from scseg.nn import SE_KINDS, available_models


def test_models_prints_every_architecture_dims_and_se_kind() -> None:
    result = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    # every architecture x (2D: none, cse, sse, scse; 3D: those + pe)
    assert len(rows) == len(available_models()) * (2 * len(SE_KINDS) - 1)
    for name in available_models():
        assert sum(r.split("│")[1].strip() == name for r in rows) == 2 * len(SE_KINDS) - 1
    scse_rows = [r for r in rows if "│ scse" in r]
    assert all("%" in r for r in scse_rows)


def test_models_rejects_unknown_aggregation() -> None:
    result = CliRunner().invoke(app, ["models", "--aggregation", "median"])
    assert result.exit_code == 2
    assert "aggregation must be one of" in result.output
    assert "Traceback" not in result.output


def test_console_entry_point_runs_as_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scseg", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("scseg ")


def test_device_names_are_checked_in_one_clear_line(phantom_run_3d, tmp_path) -> None:
    """--device gpu (not a device) and --device cuda (none here) end in one line and exit 2."""
    import torch

    runner = CliRunner()
    args = ["predict", "-m", str(phantom_run_3d), "-i", str(tmp_path), "-o", str(tmp_path / "o")]
    gpu = runner.invoke(app, [*args, "--device", "gpu"])
    assert gpu.exit_code == 2 and "--device 'gpu': expected auto, cpu, cuda or cuda:N" in gpu.output
    assert "Traceback" not in gpu.output and len(gpu.output.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        cuda = runner.invoke(app, [*args, "--device", "cuda"])
        assert cuda.exit_code == 2 and "CUDA is not available on this machine" in cuda.output
        assert len(cuda.output.strip().splitlines()) == 1
