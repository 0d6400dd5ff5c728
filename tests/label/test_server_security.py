"""The MONAI Label server under attack: the real server on 127.0.0.1, hostile requests over HTTP.

Each request from the reliability review gets a 4xx, nothing outside the datastore changes (hashed
before and after), the server stays up, and the normal inference path still works.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest

from tests.label.live_server import Server, label_server, labels_of

pytestmark = pytest.mark.slow
pytest.importorskip("monailabel", reason="the label extra is not installed (scripts/setup.sh installs it)")

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _tree_digest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
        if not any(part in skip for part in p.relative_to(root).parts)
    }


@pytest.fixture(scope="module")
def world(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("security")
    studies = base / "studies"
    studies.mkdir()
    for case in ("phantom_002", "phantom_003"):
        shutil.copyfile(phantom_root / f"imagesTr/{case}.nii.gz", studies / f"{case}.nii.gz")
    outside = base / "outside"  # what no request may read, write, import or delete
    (outside / "evil_bundle").mkdir(parents=True)
    (outside / "evil_bundle" / "__init__.py").write_text(
        f"open({str(outside / 'PWNED')!r}, 'w').write('x')\n"
    )
    (outside / "secret.txt").write_text("not for the server")
    (studies / "link_out.nii.gz").symlink_to(outside / "secret.txt")  # a link that points out
    return {"base": base, "studies": studies, "outside": outside}


@pytest.fixture(scope="module")
def server(phantom_run_3d: Path, world: dict[str, Path]) -> Iterator[Server]:
    work = world["base"] / "server"
    work.mkdir()
    extra = ("--token", TOKEN, "--max-upload-mb", "1")
    with label_server([f"m={phantom_run_3d}"], world["studies"], work, extra, headers=AUTH) as running:
        yield running


def _get(server: Server, path: str, **kw) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=AUTH, timeout=60, **kw)


def test_every_endpoint_needs_the_token(server: Server) -> None:
    assert httpx.get(f"{server.url}/info/").status_code == 401
    assert httpx.get(f"{server.url}/info/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(f"{server.url}/infer/m", params={"image": "phantom_002"}).status_code == 401
    assert httpx.get(f"{server.url}/datastore/", params={"output": "all"}).status_code == 401
    assert httpx.post(f"{server.url}/activelearning/first", json={}).status_code == 401
    assert httpx.post(f"{server.url}/train/m", json={}).status_code == 401
    assert httpx.get(f"{server.url}/train/").status_code == 401
    assert httpx.delete(f"{server.url}/train/").status_code == 401
    assert httpx.get(f"{server.url}/scoring/").status_code == 401
    info = _get(server, "/info/")
    assert info.status_code == 200 and "m" in info.json()["models"]
    assert "/tmp" not in info.text and "pytest" not in info.text, "no server paths in the app info"


def test_attacks_get_4xx_and_change_nothing_outside_the_datastore(
    server: Server, world: dict[str, Path], tmp_path: Path
) -> None:
    outside, studies = world["outside"], world["studies"]
    before_outside = _tree_digest(outside)
    before_studies = _tree_digest(studies, skip=("labels", ".lock", "datastore_v2.json"))
    url = server.url
    target = tmp_path / "written_by_attacker.py"
    attacks = [
        httpx.post(f"{url}/train/m", json={"bundle_path": str(outside / "evil_bundle")}, headers=AUTH),
        httpx.post(f"{url}/train/run", json={"bundle_path": str(outside / "evil_bundle")}, headers=AUTH),
        httpx.put(f"{url}/datastore/image", params={"image": str(target)}, files={"file": ("x.py", b"print(1)")}, headers=AUTH),
        httpx.put(f"{url}/datastore/", params={"image": str(target)}, files={"file": ("x.py", b"print(1)")}, headers=AUTH),
        httpx.delete(f"{url}/datastore/image", params={"id": "phantom_002"}, headers=AUTH),
        httpx.delete(f"{url}/datastore/label", params={"id": "phantom_002", "tag": "final"}, headers=AUTH),
        httpx.post(f"{url}/scoring/dice", headers=AUTH),
        httpx.post(f"{url}/activelearning/random", json={"model": str(outside / "evil_bundle")}, headers=AUTH),
        httpx.post(f"{url}/activelearning/../../outside", json={}, headers=AUTH),
        httpx.post(f"{url}/activelearning/first", content=b"[1, 2]", headers=AUTH),
        httpx.post(f"{url}/activelearning/first", content=b"{" + b" " * (80 << 10) + b"}", headers=AUTH),
        httpx.post(f"{url}/train/m", json={"tag": "../../outside"}, headers=AUTH),
        httpx.post(f"{url}/train/m", json={"epochs": 10**9}, headers=AUTH),
        httpx.post(f"{url}/train/m", json={}, headers=AUTH),  # no labels saved yet: nothing to train on
        httpx.post(f"{url}/train/{outside}", json={}, headers=AUTH),
        httpx.post(f"{url}/scoring/uncertainty", json={"model": "../m"}, headers=AUTH),
        httpx.post(f"{url}/batch/infer/m", headers=AUTH),
        httpx.post(f"{url}/session/", files={"files": ("a.nii.gz", b"x")}, headers=AUTH),
        httpx.get(f"{url}/logs/", headers=AUTH),
        httpx.get(f"{url}/proxy/dicom/x", headers=AUTH),
        httpx.get(f"{url}/model/m", headers=AUTH),
        httpx.get(f"{url}/docs", headers=AUTH),
        httpx.get(f"{url}/openapi.json", headers=AUTH),
        httpx.post(f"{url}/reload", headers=AUTH),
        httpx.get(f"{url}/datastore/dataset", headers=AUTH),
    ]  # fmt: skip
    for response in attacks:
        assert 400 <= response.status_code < 500, (
            response.request.method,
            response.request.url,
            response.status_code,
        )
    assert not (outside / "PWNED").exists(), "no code was imported from a client-named folder"
    assert not target.exists()
    assert _tree_digest(outside) == before_outside
    assert _tree_digest(studies, skip=("labels", ".lock", "datastore_v2.json")) == before_studies
    assert server.process.poll() is None


def test_image_ids_are_ids_only_and_reveal_nothing(server: Server, world: dict[str, Path]) -> None:
    secret, missing = world["outside"] / "secret.txt", world["outside"] / "no_such_file.nii.gz"
    answers = []
    for image in (str(secret), str(missing), "../outside/secret.txt", str(world["studies"] / "phantom_002.nii.gz"),
                  "link_out", "phantom_002/../../outside/secret", "no_such_image", ""):  # fmt: skip
        response = httpx.post(f"{server.url}/infer/m", params={"image": image}, headers=AUTH, timeout=60)
        assert response.status_code == 404, (image, response.status_code, response.text)
        answers.append(response.json()["detail"])
        assert str(world["base"]) not in response.text, "no server paths in errors"
    assert len(set(answers)) == 1, "an existing and a missing file get the same answer"
    for path, params in (("/datastore/image", {"image": str(secret)}), ("/datastore/image", {"image": "link_out"}),
                         ("/datastore/label", {"label": "phantom_002", "tag": "../../outside"})):  # fmt: skip
        response = _get(server, path, params=params)
        assert response.status_code == 404 and "not for the server" not in response.text


def test_request_parameters_cannot_redirect_inference(
    server: Server, world: dict[str, Path], tmp_path: Path
) -> None:
    params = {"params": json.dumps({"image": str(world["outside"] / "secret.txt"), "save_label": True})}
    response = httpx.post(
        f"{server.url}/infer/m", params={"image": "phantom_002"}, data=params, headers=AUTH, timeout=300
    )
    labels, _ = labels_of(response, tmp_path)
    assert labels.shape == nib.load(world["studies"] / "phantom_002.nii.gz").shape
    assert not (world["studies"] / "labels" / "original").exists() or not any(
        (world["studies"] / "labels" / "original").iterdir()
    ), "params did not make the server save anything"
    upload = httpx.post(
        f"{server.url}/infer/m",
        files={"file": ("x.nii.gz", b"\x1f\x8b not really")},
        headers=AUTH,
        timeout=60,
    )
    assert upload.status_code == 404, "uploads are not inference inputs: the image must be a datastore id"


def _declared_upload_status(server: Server, length: int) -> int:
    """The status line's code for a PUT that declares ``length`` body bytes and sends none (raw
    socket: HTTP clients set Content-Length from the body they actually send)."""
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        f"PUT /datastore/label?image=phantom_002&tag=final HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {AUTH['Authorization']}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request.encode())
        status_line = connection.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_label_uploads_are_checked_limited_and_leave_nothing_behind(
    server: Server, world: dict[str, Path], tmp_path: Path
) -> None:
    image = nib.load(world["studies"] / "phantom_002.nii.gz")
    uploads = world["base"] / "server" / "app" / "uploads"

    def put(content: bytes, tag: str = "final") -> httpx.Response:
        return httpx.put(
            f"{server.url}/datastore/label",
            params={"image": "phantom_002", "tag": tag},
            files={"label": ("label.nii.gz", content)},
            headers=AUTH,
            timeout=120,
        )

    def nifti(data: np.ndarray, affine: np.ndarray = image.affine) -> bytes:
        path = tmp_path / "l.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), path)
        return path.read_bytes()

    good = np.zeros(image.shape, np.uint8)
    good[10:14, 10:14, 10:14] = 2
    assert put(nifti(good), tag="../../evil").status_code == 422
    assert put(b"this is not a nifti").status_code == 422
    assert put(nifti(good[:-1])).status_code == 422, "wrong shape"
    assert put(nifti(good, np.diag([2.0, 2.0, 2.0, 1.0]))).status_code == 422, "another grid"
    assert put(nifti(np.full(image.shape, 9, np.uint8))).status_code == 422, "a value no model knows"
    assert put(np.random.default_rng(0).bytes(3 << 20)).status_code == 413, "over --max-upload-mb"
    # a 10 GiB upload is refused on its declared length, before a byte of its body is read
    assert _declared_upload_status(server, 10 << 30) == 413
    assert not any((world["base"] / "server" / "app" / "tmp").iterdir()), "no spooled upload left"
    assert not any(uploads.iterdir()), "refused uploads leave nothing behind"
    saved = put(nifti(good))
    assert saved.status_code == 200, saved.text
    stored = _get(server, "/datastore/label", params={"label": "phantom_002", "tag": "final"})
    assert stored.status_code == 200
    path = tmp_path / "stored.nii.gz"
    path.write_bytes(stored.content)
    assert np.array_equal(np.asanyarray(nib.load(path).dataobj), good)
    assert not any(uploads.iterdir())
    listing = _get(server, "/datastore/", params={"output": "all"}).json()
    assert listing["objects"]["phantom_002"]["labels"] == ["final"]
    assert str(world["base"]) not in json.dumps(listing), "ids, not server paths"
    assert server.process.poll() is None
