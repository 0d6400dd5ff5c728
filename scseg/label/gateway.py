"""The HTTP surface of ``scseg label serve``: only the endpoints our app needs, nothing else.

monailabel's own FastAPI app mounts every router it has (training with a client-chosen bundle path,
image upload to any path, deletion, sessions, proxies, logs). We serve our app through this
smaller app instead, built from the same monailabel app instance:

- ``GET /info/``: the app and its models;
- ``POST /infer/{model}?image=ID``: segment a datastore image (no uploads, no request parameters that
  could name a path or make the server save anything);
- ``GET /datastore/?output=stats|all``: the datastore listing, by id;
- ``GET /datastore/image?image=ID`` and ``GET /datastore/label?label=ID&tag=TAG``: downloads;
- ``PUT /datastore/label?image=ID&tag=TAG``: a corrected label saved into the datastore (size limit,
  content check against the image, nothing left in /tmp);
- the annotate-train loop (:mod:`scseg.label.loop_routes`): ``POST /activelearning/{strategy}``,
  ``POST|GET|DELETE /train/...``, ``GET|POST /scoring/...``; training runs scseg's own trainer on
  the saved labels, never with a client-chosen path or code.

Every id is looked up among the datastore's own ids and the resolved file must lie inside the
datastore; anything else is a 404 that does not say whether a file exists. An optional shared token
(``Authorization: Bearer TOKEN``) guards every endpoint.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from fastapi import BackgroundTasks, FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response

from scseg.label.loop_routes import add_loop_routes

STUDIES_CONF = "scseg_studies"  # app conf key: the --studies folder, resolved
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
SAFE_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
UPLOAD_CHUNK = 1 << 20


def _not_found(what: str) -> HTTPException:
    # the same answer whether the id is malformed, unknown, or names something outside the datastore
    return HTTPException(404, f"unknown {what}")


def _instance() -> Any:
    from monailabel.interfaces.utils.app import app_instance

    return app_instance()


def studies_root() -> Path:
    """The folder every served file must lie in: the ``--studies`` folder (the datastore itself, or
    the folder holding the ``scseg-datastore`` that links to its NIfTI files)."""
    from monailabel.config import settings

    return Path(settings.MONAI_LABEL_APP_CONF[STUDIES_CONF]).resolve()


def _inside(path: str, root: Path) -> Path | None:
    if not path:
        return None
    resolved = Path(path).resolve()
    return resolved if resolved.is_relative_to(root) and resolved.exists() else None


def resolve_image(image_id: object) -> Path:
    """The file (or DICOM folder) of a datastore image id.

    Raises:
        HTTPException: 404 for anything that is not one of the datastore's ids, or whose file lies
            outside the datastore (a link pointing out of it).
    """
    if not isinstance(image_id, str) or not SAFE_ID.fullmatch(image_id):
        raise _not_found("image")
    store = _instance().datastore()
    if image_id not in store.list_images():
        raise _not_found("image")
    path = _inside(store.get_image_uri(image_id), studies_root())
    if path is None:
        raise _not_found("image")
    return path


def _resolve_label(label_id: str, tag: str) -> Path:
    if not SAFE_TAG.fullmatch(tag or ""):
        raise _not_found("label")
    resolve_image(label_id)  # labels are keyed by their image's id
    path = _inside(_instance().datastore().get_label_uri(label_id, tag), studies_root())
    if path is None or not path.is_file():
        raise _not_found("label")
    return path


def _check_token(request: Request, token: str | None) -> JSONResponse | None:
    if not token:
        return None
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        return JSONResponse({"detail": "missing or wrong token (Authorization: Bearer TOKEN)"}, 401)
    return None


async def _save_upload(upload: UploadFile, folder: Path, limit: int) -> Path:
    """Stream an upload into ``folder`` (inside the app folder), refusing it past ``limit`` bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".nii.gz", dir=folder)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(UPLOAD_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"upload larger than the limit of {limit // (1 << 20)} MiB")
                out.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def check_label_file(label: Path, image: Path, allowed: set[int]) -> None:
    """A label upload must be a NIfTI label map on the image's grid with values the models know.

    Raises:
        HTTPException: 422 with the reason (no paths in it).
    """
    from scseg.errors import ScsegError
    from scseg.io.names import display_path
    from scseg.io.nifti import load_nifti
    from scseg.label.infer import read_volume

    try:  # load_nifti: the declared size is checked before the array is (a gzip bomb would not be)
        upload = load_nifti(label)
        data = np.asanyarray(upload.dataobj)
    except ScsegError as err:
        reason = str(err).replace(display_path(label), "the label")  # no server paths in answers
        raise HTTPException(422, f"the label is not a usable NIfTI file: {reason}") from None
    except Exception as err:
        raise HTTPException(422, f"the label is not a readable NIfTI file ({type(err).__name__})") from None
    reference = read_volume(image)
    if (
        data.shape[:3] != reference.shape[:3]
        or data.ndim not in (3, 4)
        or (data.ndim == 4 and data.shape[3] != 1)
    ):
        raise HTTPException(
            422, f"the label's shape {data.shape} does not match the image's {reference.shape}"
        )
    if not np.allclose(upload.affine, reference.affine, atol=1e-3):
        raise HTTPException(422, "the label's affine does not match the image's (it lies on another grid)")
    if not np.issubdtype(data.dtype, np.integer) and not np.array_equal(data, np.rint(data)):
        raise HTTPException(422, "the label holds non-integer values; expected a label map")
    values = {int(v) for v in np.unique(data)} - {0}
    unknown = sorted(values - allowed)
    if unknown:
        raise HTTPException(
            422,
            f"the label holds values {unknown[:10]} that no served model knows (known: {sorted(allowed)})",
        )


MULTIPART_OVERHEAD = 64 << 10  # form boundaries and part headers around the uploaded file


class BodyLimit:
    """Refuse a request body over the limit before anything reads it (pure ASGI middleware).

    Starlette parses a multipart form, spooling the whole file to a temp file, before a route runs;
    a size check in the route would come after the disk had filled. The declared ``Content-Length``
    is checked first (uvicorn stops a body at that length), and a body without one is refused.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            declared = headers.get(b"content-length")
            if declared is None and b"transfer-encoding" in headers:
                await JSONResponse({"detail": "a Content-Length is required"}, 411)(scope, receive, send)
                return
            if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
                limit_mb = (self.limit - MULTIPART_OVERHEAD) // (1 << 20)
                detail = f"upload larger than the limit of {limit_mb} MiB"
                await JSONResponse({"detail": detail}, 413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _store_label(image: str, target: Path, saved: Path, tag: str, params: str) -> dict[str, Any]:
    """Check an uploaded label, name it after the model it belongs to, and put it in the datastore
    (and, for a DICOM study, beside it as a DICOM SEG); see :mod:`scseg.label.saved_labels`."""
    from scseg.label.saved_labels import (
        SEG_FOLDER,
        dicom_source,
        label_info,
        model_for_values,
        renumber_by_name,
        write_label_seg,
    )

    instance = _instance()
    try:
        info = json.loads(params) if params else {}
    except json.JSONDecodeError:
        raise HTTPException(422, "params must be a JSON object") from None
    info = info if isinstance(info, dict) else {}
    specs = {name: task.predictor.spec for name, task in instance._infers.items()}
    if "label_info" in info:
        known = {
            n: v
            for spec in specs.values()
            for n, v in zip(spec.labels.names, spec.labels.values, strict=True)
        }
        renumber_by_name(saved, info.pop("label_info"), known)
    check_label_file(saved, target, instance.label_values())
    values = {int(v) for v in np.unique(np.asanyarray(nib.load(saved).dataobj))} - {0}
    model = model_for_values(specs, values, info.get("model")) or next(iter(specs))
    store = instance.datastore()
    series = dicom_source(Path(instance.studies), image)
    if series is not None:  # first the SEG: when it cannot be written, nothing is saved
        write_label_seg(
            saved, series, specs[model], Path(instance.studies) / SEG_FOLDER / tag / f"{image}.dcm"
        )
    label_id = store.save_label(image, str(saved), tag, label_info(specs[model], model, info))
    return {"image": image, "label": label_id, "tag": tag, "model": model, "dicom_seg": series is not None}


def build_app(app_dir: Path, token: str | None = None, max_upload_bytes: int = 256 << 20) -> FastAPI:
    """The FastAPI app ``scseg label serve`` runs (monailabel's settings must be set already)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        instance = _instance()
        instance.server_mode(True)
        instance.on_init_complete()
        yield
        instance.training.shutdown()  # a training must not outlive its server (nobody would record it)

    app = FastAPI(
        title="scseg MONAI Label", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    uploads = app_dir / "uploads"
    app.add_middleware(BodyLimit, limit=max_upload_bytes + MULTIPART_OVERHEAD)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        refused = _check_token(request, token)
        return refused if refused is not None else await call_next(request)

    @app.get("/info/")
    def info() -> dict[str, Any]:
        return _instance().info()

    @app.post("/infer/{model}")
    def infer(model: str, background_tasks: BackgroundTasks, image: str = "") -> Response:
        from monailabel.endpoints.infer import send_response

        instance = _instance()
        path = resolve_image(image)
        result = instance.infer({"model": model, "image": str(path), "save_label": False})
        return send_response(instance.datastore(), result, None, background_tasks)

    @app.get("/datastore/")
    def datastore(output: str = "stats") -> dict[str, Any]:
        store = _instance().datastore()
        if output == "stats":
            return store.status()
        if output == "all":
            return {
                "objects": {
                    i: {"labels": sorted(store.get_labels_by_image_id(i))} for i in store.list_images()
                }
            }
        raise HTTPException(422, "output must be stats or all")

    @app.get("/datastore/image")
    def download_image(image: str) -> FileResponse:
        path = resolve_image(image)
        if not path.is_file():
            raise HTTPException(422, "this image is a DICOM series folder; download its series from the PACS")
        return FileResponse(path, filename=path.name)

    @app.get("/datastore/label")
    def download_label(label: str, tag: str) -> FileResponse:
        path = _resolve_label(label, tag)
        return FileResponse(path, filename=path.name)

    @app.put("/datastore/label")
    async def save_label(
        image: str, label: UploadFile, tag: str = "final", params: str = Form("{}")
    ) -> dict[str, Any]:
        if not SAFE_TAG.fullmatch(tag):
            raise HTTPException(422, "tag: letters, digits, _ and - only")
        target = resolve_image(image)
        saved = await _save_upload(label, uploads, max_upload_bytes)
        try:
            return _store_label(image, target, saved, tag, params)
        finally:
            saved.unlink(missing_ok=True)

    add_loop_routes(app)
    return app
