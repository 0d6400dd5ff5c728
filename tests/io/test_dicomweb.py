"""DICOMweb against a real Orthanc (with its DICOMweb plugin) started on 127.0.0.1 by the test:
upload a real series, predict by URL, push the SEG / RT structure set, read them back from Orthanc."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import requests

from scseg.errors import ConfigError, DataError
from scseg.io import dicomweb
from scseg.io.dicom_seg import read_dicom_seg

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
SERIES = "dicom_mr_brain_tcia_btp/Study1/13_HCropVolume"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Orthanc's REST root on 127.0.0.1 (temporary storage), stopped by PID afterwards."""
    binary = shutil.which("Orthanc")
    if binary is None or not PLUGIN.is_file():
        message = (
            "Orthanc with its DICOMweb plugin is not installed (scripts/setup.sh: orthanc, orthanc-dicomweb)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires the service: {message}")
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("orthanc")
    port = _free_port()
    config = {
        "Name": "scseg-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }  # fmt: skip
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = (folder / "log.txt").open("w")
    process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{root}/system", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail(f"Orthanc did not start: {(folder / 'log.txt').read_text()[-2000:]}")
        yield root
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.data
@pytest.mark.slow
def test_predict_by_url_and_push_back(
    orthanc: str, phantom_run_3d: Path, shared_data: Path, tmp_path: Path
) -> None:
    files = sorted((shared_data / SERIES).iterdir())
    for file in files:  # the archive holds the study, as a PACS would
        assert requests.post(f"{orthanc}/instances", data=file.read_bytes(), timeout=30).ok
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    url = f"{orthanc}/dicom-web/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    out = tmp_path / "out"
    command = [sys.executable, "-m", "scseg", "predict", "-m", str(phantom_run_3d), "-i", url, "-o", str(out),
               "--push", f"{orthanc}/dicom-web", "--rtstruct"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    with (out / "summary.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "done" and "stored 2 instance(s) via STOW-RS" in row["message"], row
    assert not (out / ".scseg-dicomweb").exists(), "the retrieved series are removed when the run ends"

    # read back from the archive: QIDO finds the SEG in the study, WADO returns the same voxels
    client = dicomweb._client(f"{orthanc}/dicom-web")
    modalities = {
        s["00080060"]["Value"][0] for s in client.search_for_series(study_instance_uid=first.StudyInstanceUID)
    }
    assert {"MR", "SEG", "RTSTRUCT"} <= modalities
    (seg_series,) = client.search_for_series(
        study_instance_uid=first.StudyInstanceUID, search_filters={"Modality": "SEG"}
    )
    (seg,) = client.retrieve_series(first.StudyInstanceUID, seg_series["0020000E"]["Value"][0])
    seg.save_as(tmp_path / "stored_seg.dcm", enforce_file_format=True)
    labels = nib.load(Path(row["output"]) / "labels.nii.gz")
    np.testing.assert_array_equal(
        read_dicom_seg(tmp_path / "stored_seg.dcm", labels), np.asanyarray(labels.dataobj)
    )


def test_a_push_the_archive_does_not_confirm_is_never_reported_stored(orthanc: str, tmp_path: Path) -> None:
    ds = pydicom.Dataset()
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    with pytest.raises(DataError, match="STOW-RS to .*/no-such-root"):  # 404: not retried, not stored
        dicomweb.push(f"{orthanc}/no-such-root", [tmp_path / "x.dcm"])
    # an instance the archive refuses (no study): an error status or a FailedSOPSequence, never "stored"
    with pytest.raises(DataError, match=r"STOW-RS to .*/dicom-web: (400|.*stored 0 of 1)"):
        dicomweb.push(f"{orthanc}/dicom-web", [tmp_path / "x.dcm"])


def test_urls_and_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = dicomweb.parse_dicomweb_url("https://pacs.example/dicom-web/studies/1.2.3/series/4.5")
    assert (target.base, target.study, target.series) == ("https://pacs.example/dicom-web", "1.2.3", "4.5")
    assert dicomweb.parse_dicomweb_url("http://h/wado/studies/1.2").series is None
    with pytest.raises(ConfigError, match="BASE/studies"):
        dicomweb.parse_dicomweb_url("http://h/wado/patients/7")
    for key in ("SCSEG_DICOMWEB_TOKEN", "SCSEG_DICOMWEB_USER", "SCSEG_DICOMWEB_CREDENTIALS"):
        monkeypatch.delenv(key, raising=False)
    assert dicomweb.session().auth is None and "Authorization" not in dicomweb.session().headers
    monkeypatch.setenv("SCSEG_DICOMWEB_TOKEN", "abc")
    assert dicomweb.session().headers["Authorization"] == "Bearer abc"
    monkeypatch.delenv("SCSEG_DICOMWEB_TOKEN")
    (tmp_path / "cred").write_text("alice:s3cret\n")
    monkeypatch.setenv("SCSEG_DICOMWEB_CREDENTIALS", str(tmp_path / "cred"))
    assert dicomweb.session().auth == ("alice", "s3cret")
    (tmp_path / "cred").write_text("nonsense\n")
    with pytest.raises(ConfigError, match="user:password"):
        dicomweb.session()
    monkeypatch.delenv("SCSEG_DICOMWEB_CREDENTIALS")
    retry = dicomweb.session().get_adapter("https://x").max_retries  # back-off on 429 / 5xx, STOW too
    assert retry.total == 5 and 503 in retry.status_forcelist and retry.allowed_methods is None


def test_a_failed_url_run_removes_its_download_and_keep_download_keeps_it(
    orthanc: str, phantom_run_3d: Path, shared_data: Path, tmp_path: Path
) -> None:
    files = sorted((shared_data / SERIES).iterdir())
    for file in files:
        assert requests.post(f"{orthanc}/instances", data=file.read_bytes(), timeout=30).ok
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    url = f"{orthanc}/dicom-web/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
    base = [sys.executable, "-m", "scseg", "predict", "-m", str(phantom_run_3d), "-i", url, "--rtstruct"]
    # the push target refuses everything: the case fails after the series was retrieved
    out = tmp_path / "failed"
    run = subprocess.run(
        [*base, "-o", str(out), "--push", f"{orthanc}/no-such-root"], capture_output=True, text=True
    )
    assert run.returncode == 5 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert not (out / ".scseg-dicomweb").exists()
    kept = tmp_path / "kept"
    run = subprocess.run([*base, "-o", str(kept), "--keep-download"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    (series,) = list((kept / ".scseg-dicomweb").glob("*/*"))
    assert len(list(series.glob("*.dcm"))) == len(files)
