"""The annotate-train loop's endpoints (added to :mod:`scseg.label.gateway`'s app).

- ``POST /activelearning/{strategy}``: the next image to label (``first``, ``random``,
  ``uncertainty``); JSON body (optional): ``model`` (whose uncertainty), ``tag`` (``final``);
- ``POST /train/{model}``: start fine-tuning ``model`` on the saved labels (JSON body: the options
  ``GET /info/`` lists under ``trainers``); ``GET /train/[?check_if_running=true]``: the status;
  ``DELETE /train/``: stop it;
- ``GET /scoring/``: the uncertainty scoring's progress; ``POST /scoring/uncertainty``: rescore.

The bodies are what monailabel's client (and so 3D Slicer's module) sends: a JSON object, with a
``client_id`` the server ignores.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from scseg.label.active_learning import next_sample

JSON_BODY_LIMIT = 64 << 10


async def json_params(request: Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty).

    Raises:
        HTTPException: 413 over 64 KiB, 422 for anything but a JSON object.
    """
    body = await request.body()
    if len(body) > JSON_BODY_LIMIT:
        raise HTTPException(413, f"a JSON body may hold at most {JSON_BODY_LIMIT >> 10} KiB")
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(422, "the body must be a JSON object") from None
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise HTTPException(422, "the body must be a JSON object")
    return params


def _instance() -> Any:
    from monailabel.interfaces.utils.app import app_instance

    return app_instance()


def choose_next(instance: Any, strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    """The ``next_sample`` answer: the image id and why it was chosen (never a server path)."""
    model = params.get("model") or instance.scoring_model()
    if model not in instance.trainable:
        raise HTTPException(404, f"unknown model {model!r}")
    tag = params.get("tag", "final")
    if not isinstance(tag, str):
        raise HTTPException(422, "tag must be a string")
    store = instance.datastore()
    unlabelled = [i for i in store.list_images() if tag not in store.get_labels_by_image_id(i)]
    if not unlabelled:
        # monailabel answers {} here; 3D Slicer then says that no unlabelled image is left
        return {"message": f"every image in the datastore has a {tag!r} label"}
    version = instance.trainable[model].versions.current
    scores = instance.scoring.scores_for(model, version)
    seed = params.get("seed") if isinstance(params.get("seed"), int) else None
    image_id, score = next_sample(strategy, unlabelled, scores, seed)
    return {
        "id": image_id,
        "name": image_id,
        "strategy": strategy,
        "model": model,
        "version": version,
        "score": score,
        "scored": f"{len([i for i in unlabelled if i in scores])}/{len(unlabelled)} unlabelled images",
        "url": f"/datastore/image?image={image_id}",
        "path": "",  # clients load a shared file from here; the server's paths are not given out
    }


def add_loop_routes(app: FastAPI) -> None:
    @app.post("/activelearning/{strategy}")
    async def activelearning(strategy: str, request: Request) -> dict[str, Any]:
        params = await json_params(request)
        return choose_next(_instance(), strategy, params)

    @app.get("/train/")
    def train_status(check_if_running: bool = False) -> dict[str, Any]:
        return _instance().training.status(check_if_running)

    @app.post("/train/{model}")
    async def train_start(model: str, request: Request) -> dict[str, Any]:
        params = await json_params(request)
        return _instance().training.start(model, params)

    @app.delete("/train/")
    def train_stop() -> dict[str, Any]:
        return _instance().training.stop()

    @app.get("/scoring/")
    def scoring_status() -> dict[str, Any]:
        return _instance().scoring.record()

    @app.post("/scoring/{method}")
    async def scoring_start(method: str, request: Request) -> dict[str, Any]:
        if method != "uncertainty":
            raise HTTPException(404, f"unknown scoring method {method!r}; methods: uncertainty")
        params = await json_params(request)
        return _instance().start_scoring(params.get("model"))
