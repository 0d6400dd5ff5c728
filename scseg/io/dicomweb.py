"""DICOMweb: series from an archive (QIDO-RS to list, WADO-RS to retrieve) and results back (STOW-RS).

``scseg predict --input URL`` takes a study or series URL of a DICOMweb service
(``https://pacs/dicom-web/studies/{study}[/series/{series}]``); ``--push BASE`` stores each
case's DICOM outputs (SEG, RT structure set) with STOW-RS. dicomweb-client does the protocol;
this module adds what a hospital batch needs around it:

- Credentials never on the command line: ``SCSEG_DICOMWEB_TOKEN`` (a bearer token), or
  ``SCSEG_DICOMWEB_USER`` + ``SCSEG_DICOMWEB_PASSWORD``, or ``SCSEG_DICOMWEB_CREDENTIALS`` naming a file
  whose first line is ``user:password`` or ``Bearer TOKEN``.
- Transient failures (connection errors, 429 / 5xx) are retried with exponential back-off. Storing
  an instance again is harmless (same SOP Instance UID), so STOW is retried as well.
- A result is reported as stored only when the archive's STOW response lists every instance sent
  and none as failed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from scseg.errors import ConfigError, DataError
from scseg.limits import MAX_STUDY_SERIES

_URL = re.compile(r"^(?P<base>https?://.+?)/studies/(?P<study>[0-9.]+)(?:/series/(?P<series>[0-9.]+))?/?$")
RETRIES = Retry(
    total=5,
    backoff_factor=0.5,  # 0.5, 1, 2, 4, 8 s
    status_forcelist=(429, 500, 502, 503, 504),
    allowed_methods=None,  # every method: STOW of the same instances again is idempotent
    raise_on_status=False,
)


@dataclass(frozen=True)
class DicomwebTarget:
    """A study (all its series) or one series on a DICOMweb service."""

    base: str
    study: str
    series: str | None = None


def is_dicomweb_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def parse_dicomweb_url(url: str) -> DicomwebTarget:
    """``BASE/studies/UID[/series/UID]`` -> its parts.

    Raises:
        ConfigError: any other URL.
    """
    match = _URL.match(url.strip())
    if match is None:
        raise ConfigError(
            f"--input {url}: expected a DICOMweb study or series URL, "
            "BASE/studies/<StudyInstanceUID>[/series/<SeriesInstanceUID>]"
        )
    return DicomwebTarget(match["base"], match["study"], match["series"])


def _credentials() -> tuple[str, str] | str | None:
    """(user, password), a bearer token, or None, from the environment (never from arguments)."""
    if os.environ.get("SCSEG_DICOMWEB_TOKEN"):
        return os.environ["SCSEG_DICOMWEB_TOKEN"]
    if os.environ.get("SCSEG_DICOMWEB_USER"):
        return os.environ["SCSEG_DICOMWEB_USER"], os.environ.get("SCSEG_DICOMWEB_PASSWORD", "")
    file = os.environ.get("SCSEG_DICOMWEB_CREDENTIALS")
    if not file:
        return None
    try:
        line = Path(file).read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"SCSEG_DICOMWEB_CREDENTIALS {file}: cannot read its first line (user:password or Bearer TOKEN): {err}"
        ) from None
    if line.lower().startswith("bearer "):
        return line[7:].strip()
    user, sep, password = line.partition(":")
    if not sep:
        raise ConfigError(f"SCSEG_DICOMWEB_CREDENTIALS {file}: expected 'user:password' or 'Bearer TOKEN'")
    return user, password


def session() -> requests.Session:
    """An HTTP session with the credentials and the retry policy."""
    http = requests.Session()
    adapter = HTTPAdapter(max_retries=RETRIES)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    credentials = _credentials()
    if isinstance(credentials, tuple):
        http.auth = credentials
    elif credentials:
        http.headers["Authorization"] = f"Bearer {credentials}"
    return http


def _client(base: str) -> DICOMwebClient:

    client = DICOMwebClient(url=base, session=session(), timeout=_timeout())
    # one retry policy, the session's (RETRIES): dicomweb-client's own retries (5 attempts) wrapped
    # around it made 30 requests and two minutes of waiting out of one dead archive
    client.set_http_retry_params(retry=False)
    return client


def _timeout() -> float:
    """Seconds to wait for the archive's next bytes (``SCSEG_DICOMWEB_TIMEOUT``, default 20)."""
    text = os.environ.get("SCSEG_DICOMWEB_TIMEOUT", "").strip()
    try:
        seconds = float(text) if text else 20.0
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86400:
        raise ConfigError(f"SCSEG_DICOMWEB_TIMEOUT={text!r}: expected a number of seconds (e.g. 20)")
    return seconds


def download(url: str, dest: Path) -> list[Path]:
    """Retrieve the series a study / series URL names into ``dest/<SeriesInstanceUID>/``.

    The archive's answers are checked as it is trusted with nothing: at most
    :data:`~scseg.limits.MAX_STUDY_SERIES` series a study (asked for with QIDO's ``limit``, counted
    again), every part of the answer a DICOM instance, and as many instances as QIDO's
    NumberOfSeriesRelatedInstances says the series holds (a cut answer is never segmented).

    Raises:
        DataError: the service cannot be reached or answers with an error (after the retries), the
            study holds no series or too many, an answer that is not DICOM or misses instances.
    """
    target = parse_dicomweb_url(url)
    client = _client(target.base)
    most = MAX_STUDY_SERIES.value()
    try:
        found = client.search_for_series(
            study_instance_uid=target.study,
            search_filters={"SeriesInstanceUID": target.series} if target.series else None,
            fields=["NumberOfSeriesRelatedInstances"],
            limit=None if target.series else most + 1,
        )
        expected = {_value(item, "0020000E"): _value(item, "00201209") for item in found}
        series = [target.series] if target.series else list(expected)
        if len(series) > most:
            raise DataError(
                MAX_STUDY_SERIES.refusal("the study lists more series than the limit (QIDO)", len(found))
            )
        folders = [
            _retrieve_series(client, target.study, uid, expected.get(uid), dest / uid) for uid in series
        ]
    except requests.RequestException as err:
        raise DataError(f"DICOMweb {url}: {err}") from None
    except DataError as err:
        raise DataError(f"DICOMweb {url}: {err}") from None
    if not folders:
        raise DataError(f"DICOMweb {url}: the study has no series")
    return folders


def _value(item: dict, tag: str) -> object:
    """One value of a DICOM JSON attribute (QIDO answer), or None."""
    values = (item.get(tag) or {}).get("Value") or [None]
    return values[0]


def _retrieve_series(client: DICOMwebClient, study: str, uid: str, expected: object, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        for count, ds in enumerate(client.retrieve_series(study, uid), start=1):
            ds.save_as(folder / f"{count - 1:05d}.dcm", enforce_file_format=True)
    except (ValueError, KeyError, pydicom.errors.InvalidDicomError) as err:  # the client's parsing
        raise DataError(f"series {uid}: the answer is not a multipart of DICOM instances ({err})") from None
    if isinstance(expected, int | str) and str(expected).isdigit() and count != int(expected):
        raise DataError(
            f"series {uid}: retrieved {count} of the {expected} instances the archive lists (a cut "
            "answer?); not segmented"
        )
    return folder


@contextlib.contextmanager
def downloaded(url: str, dest: Path, keep: bool = False, fetch: bool = True) -> Iterator[Path]:
    """``dest`` holding the series ``url`` names (:func:`download`) for the duration of the block,
    removed afterwards, also when the block fails, unless ``keep`` (``--keep-download``): patient
    images must not pile up in an output folder nobody looks into. ``fetch=False``: another process
    (rank 0 of a sharded run) downloads and removes them.
    """
    try:
        if fetch:
            download(url, dest)
        yield dest
    finally:
        if fetch and not keep:
            shutil.rmtree(dest, ignore_errors=True)
            with contextlib.suppress(OSError):
                dest.parent.rmdir()  # the common .scseg-dicomweb folder, once empty


def push(base: str, files: list[Path]) -> int:
    """Store ``files`` with STOW-RS; the number of instances the archive confirmed.

    Raises:
        DataError: the request failed, or the archive did not confirm every instance (a result is
            never reported as stored when only part of it is).
    """
    datasets = [pydicom.dcmread(f) for f in files]
    sent = {str(ds.SOPInstanceUID) for ds in datasets}
    try:
        response = _client(base).store_instances(datasets)
    except requests.RequestException as err:
        raise DataError(f"STOW-RS to {base}: {err}") from None
    failed = [str(item.ReferencedSOPInstanceUID) for item in response.get("FailedSOPSequence", [])]
    stored = {str(item.ReferencedSOPInstanceUID) for item in response.get("ReferencedSOPSequence", [])}
    if failed or stored != sent:
        raise DataError(
            f"STOW-RS to {base}: the archive stored {len(stored & sent)} of {len(sent)} instance(s)"
            + (f"; failed: {', '.join(failed)}" if failed else "")
        )
    return len(stored)
