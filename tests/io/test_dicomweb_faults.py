"""A DICOMweb archive that fails or lies (issue 44 §4), played by a small scripted HTTP server on
127.0.0.1: each answer ends recovered or failed with the reason, in bounded time, and a series with
missing instances is never taken as complete. (The real Orthanc: ``test_dicomweb.py``.)"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydicom
import pytest

from scseg.errors import DataError
from scseg.io import dicomweb

BOUNDARY = "scsegboundary"
Answer = tuple[int, str, bytes]  # status, Content-Type, body


class ScriptedArchive:
    """Answers QIDO (``.../series?...``) and WADO (``.../series/UID``) requests from two callables;
    counts the requests of each kind."""

    def __init__(
        self, qido: Callable[[int], Answer], wado: Callable[[int], Answer], delay: float = 0.0
    ) -> None:
        self.qido, self.wado, self.delay = qido, wado, delay
        self.requests = {"qido": 0, "wado": 0}


@contextlib.contextmanager
def _serve(archive: ScriptedArchive) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            kind = "qido" if self.path.split("?")[0].endswith("/series") else "wado"
            archive.requests[kind] += 1
            status, content_type, body = getattr(archive, kind)(archive.requests[kind])
            if kind == "wado" and archive.delay:
                time.sleep(archive.delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: expected
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def series_files(phantom_root: Path) -> list[Path]:
    return sorted(next((phantom_root / "dicom").iterdir()).glob("*.dcm"))


def _uids(files: list[Path]) -> tuple[str, str]:
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID


def _qido(series_uid: str, instances: int) -> Answer:
    item = {"0020000E": {"vr": "UI", "Value": [series_uid]}, "00201209": {"vr": "IS", "Value": [instances]}}
    return 200, "application/dicom+json", json.dumps([item]).encode()


def _multipart(parts: list[bytes], close: bool = True) -> Answer:
    body = b"".join(
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n" for part in parts
    )
    body += f"--{BOUNDARY}--\r\n".encode() if close else b""
    return 200, f'multipart/related; type="application/dicom"; boundary={BOUNDARY}', body


def _download(archive: ScriptedArchive, files: list[Path], dest: Path, study_url: bool = False) -> list[Path]:
    study, series = _uids(files)
    with _serve(archive) as base:
        url = f"{base}/studies/{study}" if study_url else f"{base}/studies/{study}/series/{series}"
        return dicomweb.download(url, dest)


def test_503_twice_then_the_series_is_retrieved(series_files: list[Path], tmp_path: Path) -> None:
    _study, series = _uids(series_files)
    whole = _multipart([f.read_bytes() for f in series_files])
    archive = ScriptedArchive(
        qido=lambda n: _qido(series, len(series_files)),
        wado=lambda n: (503, "text/plain", b"busy") if n <= 2 else whole,
    )
    (folder,) = _download(archive, series_files, tmp_path / "dl")
    assert archive.requests["wado"] == 3, "the two 503s were retried"
    assert len(list(folder.glob("*.dcm"))) == len(series_files)
    assert {pydicom.dcmread(f).SOPInstanceUID for f in folder.glob("*.dcm")} == {
        pydicom.dcmread(f).SOPInstanceUID for f in series_files
    }


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("not_dicom", "not a multipart of DICOM instances"),
        ("wrong_type", "not a multipart of DICOM instances"),
        ("cut", "retrieved 2 of the 3 instances"),
    ],
)
def test_an_answer_that_lies_fails_with_the_reason(
    series_files: list[Path], tmp_path: Path, answer: str, reason: str
) -> None:
    files = series_files[:3]
    _study, series = _uids(files)
    parts = [f.read_bytes() for f in files]
    wado = {
        "not_dicom": _multipart([parts[0], b"<html>not an instance</html>", parts[2]]),
        "wrong_type": (200, "text/html", b"<html>login page</html>"),
        "cut": _multipart(parts[:2], close=False),  # the connection ended after two parts
    }[answer]
    archive = ScriptedArchive(qido=lambda n: _qido(series, 3), wado=lambda n: wado)
    with pytest.raises(DataError, match=reason):
        _download(archive, files, tmp_path / "dl")


def test_a_study_listing_100000_series_is_refused_before_retrieving_any(
    series_files: list[Path], tmp_path: Path
) -> None:
    items = [{"0020000E": {"vr": "UI", "Value": [f"1.2.3.{i}"]}} for i in range(100_000)]
    body = json.dumps(items).encode()
    archive = ScriptedArchive(
        qido=lambda n: (200, "application/dicom+json", body), wado=lambda n: _multipart([])
    )
    with pytest.raises(DataError, match="SCSEG_MAX_STUDY_SERIES"):
        _download(archive, series_files, tmp_path / "dl", study_url=True)
    assert archive.requests["wado"] == 0


def test_an_archive_slower_than_the_timeout_fails_in_bounded_time(
    series_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCSEG_DICOMWEB_TIMEOUT", "0.5")
    _study, series = _uids(series_files)
    archive = ScriptedArchive(
        qido=lambda n: _qido(series, len(series_files)),
        wado=lambda n: _multipart([f.read_bytes() for f in series_files]),
        delay=3.0,
    )
    start = time.monotonic()
    with pytest.raises(DataError, match="timed out|Read timed out"):
        _download(archive, series_files, tmp_path / "dl")
    assert time.monotonic() - start < 60
