"""Train a multi-view model (``mode.views``): one 2D model per view, then one artefact of them all.

Each view trains as an ordinary run in ``RUN/views/<axis>/`` (its own checkpoints, log and
``--resume``); the sagittal view learns one class per left / right pair. When every view has its
best weights, ``RUN/model.yaml`` and ``RUN/checkpoints/best.pt`` describe and hold the fused model
(:class:`scseg.nn.multiview.MultiViewNetwork`), so ``RUN`` predicts, evaluates, exports and serves
like any run directory.
"""

from __future__ import annotations

from pathlib import Path

from scseg.artefact.checkpoint import Checkpoint, save_checkpoint
from scseg.artefact.layout import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    MODEL_SPEC,
    RUN_CONFIG,
    VIEWS,
    load_model,
    write_model_spec,
)
from scseg.artefact.spec import ModelSpec, NetworkSpec, Provenance, now
from scseg.artefact.test_time import allowed_mirroring
from scseg.config.load import dump_config
from scseg.config.schema import Config
from scseg.data.lr_flip import check_lr_mirroring
from scseg.engine.trainer import TrainResult, train
from scseg.errors import ConfigError, RunDirError
from scseg.io.atomic import write_text_atomic


def view_dir(run_dir: Path, axis: str) -> Path:
    return run_dir / VIEWS / axis


def train_views(
    config: Config, run_dir: str | Path, resume: bool = False, view: str | None = None
) -> dict[str, TrainResult]:
    """Train the views of ``config.mode.views`` (or only ``view``) into ``run_dir``, then assemble
    the multi-view model once every view has its best weights.

    With ``resume``, a view with ``last.pt`` continues and a view not started yet starts.

    Raises:
        ConfigError: ``view`` is not one of the config's views.
        RunDirError: a view that already holds a run, without ``resume``.
    """
    run_dir = Path(run_dir)
    views = [v.axis for v in config.mode.views or []]
    if view is not None and view not in views:
        raise ConfigError(f"--view {view}: the config's views are {', '.join(views)}")
    if (run_dir / LAST_CHECKPOINT).exists():
        raise RunDirError(
            f"{run_dir} holds a single-view training run; a multi-view model needs its own folder"
        )
    for axis in views:  # every view's flips checked before the first view trains for minutes
        check_lr_mirroring(config.view_config(axis))
    results = {}
    for axis in [view] if view else views:
        folder = view_dir(run_dir, axis)
        again = resume and (folder / LAST_CHECKPOINT).is_file()
        results[axis] = train(config.view_config(axis), folder, resume=again)
    write_text_atomic(run_dir / RUN_CONFIG, dump_config(config))
    if all((view_dir(run_dir, a) / BEST_CHECKPOINT).is_file() for a in views):
        assemble(config, run_dir)
    return results


def assemble(config: Config, run_dir: Path) -> ModelSpec:
    """Write ``RUN/model.yaml`` and ``RUN/checkpoints/best.pt`` of the multi-view model from the
    views' best weights (each view's own Dice stays in its ``views/<axis>/model.yaml``)."""
    views, weights = [], {}
    for index, view in enumerate(config.mode.views or []):
        loaded = load_model(view_dir(run_dir, view.axis))
        table = config.view_config(view.axis).class_table
        views.append(
            {
                "axis": view.axis,
                "weight": view.weight,
                "roi_size": list(loaded.spec.inference.roi_size),
                "network": {"name": loaded.spec.network.name, "options": loaded.spec.network.options},
                "classes": None if table is None else [int(c) for c in table],
            }
        )
        weights.update({f"nets.{index}.{key}": value for key, value in loaded.weights.items()})
    first = config.view_config(views[0]["axis"])
    spec = ModelSpec.from_config(first, Provenance(trained_at=now()))
    spec.network = NetworkSpec(
        name="multiview",
        spatial_dims=2,
        in_channels=config.model.in_channels,
        out_channels=config.num_classes,
        options={"views": views},
    )
    spec.test_time = allowed_mirroring(config)  # the fused model's mirroring, not the first view's
    save_checkpoint(run_dir / BEST_CHECKPOINT, Checkpoint(model=weights, spec=spec.to_dict()))
    write_model_spec(run_dir / MODEL_SPEC, spec)
    return spec
