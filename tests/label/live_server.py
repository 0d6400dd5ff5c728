"""Start the real ``scseg label serve`` on 127.0.0.1 (a free port), wait for it, stop it by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nibabel as nib
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def post_infer(self, model: str, image: str, **params: str) -> httpx.Response:
        return httpx.post(f"{self.url}/infer/{model}", params={"image": image, **params}, timeout=300)


@contextlib.contextmanager
def label_server(
    models: list[str], studies: Path, work: Path, extra: tuple[str, ...] = (), headers: dict | None = None
) -> Iterator[Server]:
    """``scseg label serve --model M ... [extra]`` as a subprocess; yields once ``GET /info/``
    answers (sent with ``headers``, e.g. the token)."""
    port = free_port()
    log = work / "server.log"
    command = [sys.executable, "-m", "scseg", "label", "serve",
               *[arg for m in models for arg in ("--model", m)],
               "--studies", str(studies), "--port", str(port), "--device", "cpu",
               "--app-dir", str(work / "app"), *extra]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/info/", timeout=5, headers=headers).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.time() > deadline:
            process.kill()
            pytest.fail(f"no answer from {url}/info/ within 180 s:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    try:
        yield Server(process, url, log)
    finally:
        # stop it by its PID, as an operator would
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("the server did not stop within 30 s of SIGTERM")


def labels_of(response: httpx.Response, tmp_path: Path) -> tuple[nib.Nifti1Image, dict]:
    """Decode monailabel's multipart answer to ``POST /infer``: JSON params + the label NIfTI."""
    from requests_toolbelt.multipart.decoder import MultipartDecoder

    assert response.status_code == 200, response.text[:2000]
    parts = MultipartDecoder(response.content, response.headers["content-type"]).parts
    params, image = None, None
    for part in parts:
        disposition = part.headers[b"Content-Disposition"].decode()
        if 'name="params"' in disposition:
            params = json.loads(part.content)
        elif 'name="image"' in disposition:
            path = tmp_path / "label.nii.gz"
            path.write_bytes(part.content)
            image = nib.load(path)
    assert params is not None and image is not None, [p.headers for p in parts]
    return image, params
