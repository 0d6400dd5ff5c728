"""``scseg models``, ``scseg train``, ``scseg demo``."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import typer
from rich.table import Table

from scseg.cli.output import console, dice_table, fail
from scseg.paths import REPO_ROOT


def models(
    aggregation: str = typer.Option(
        "max", help="scSE aggregation used for the scse rows (max, add, mul, concat)."
    ),
    in_channels: int = typer.Option(1, help="Input channels of the counted models."),
    out_channels: int = typer.Option(3, help="Output classes of the counted models."),
) -> None:
    """Table of every architecture x dims x SE kind: parameters and SE overhead vs se=none."""
    from scseg.nn import model_sizes

    table = Table(title=f"scseg architectures (default widths, {in_channels} in / {out_channels} out)")
    for col, justify in (
        ("model", "left"),
        ("dims", "right"),
        ("se", "left"),
        ("parameters", "right"),
        ("SE overhead", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    try:
        rows = model_sizes(in_channels, out_channels, aggregation)
    except ValueError as err:
        raise fail(str(err)) from None
    for row in rows:
        overhead = "-" if row.se == "none" else f"{row.overhead_percent:+.2f} %"
        table.add_row(row.name, f"{row.spatial_dims}D", row.se, f"{row.parameters:,}", overhead)
    console.print(table)


def run_training(
    config_path: Path, out: Path, overrides: list[str], resume: bool, view: str | None = None
) -> None:
    from scseg.config import load_config
    from scseg.engine.trainer import train as train_model

    config = load_config(config_path, overrides)
    if config.mode.views:
        _train_views(config, out, resume, view)
        return
    if view is not None:
        raise fail(f"--view {view}: {config_path} trains one model (no mode.views)")
    result = train_model(config, out, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        why = "time limit reached" if result.stopped_by_time else "all epochs done"
        console.print(f"validation Dice after {result.epochs} epochs ({why}):")
        console.print(dice_table(result.final_dice))
        console.print(f"run directory: {result.run_dir} (best mean Dice {result.best_dice:.4f})")


def _train_views(config, out: Path, resume: bool, view: str | None) -> None:
    from scseg.artefact.layout import MODEL_SPEC
    from scseg.engine.multiview_training import train_views

    results = train_views(config, out, resume=resume, view=view)
    if int(os.environ.get("RANK", "0")) == 0:
        for axis, result in results.items():
            console.print(f"view {axis}: best mean Dice {result.best_dice:.4f} after {result.epochs} epochs")
        done = (out / MODEL_SPEC).is_file()
        console.print(
            f"multi-view model: {out}"
            if done
            else f"views trained so far are in {out}/views; train the others with --view"
        )


def train(
    config: Path = typer.Argument(..., help="YAML training config (see configs/)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run directory to create (or to continue with --resume)."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config value: --set train.max_epochs=5 (repeatable)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from checkpoints/last.pt."
    ),
    view: str = typer.Option(
        None,
        "--view",
        help="Multi-view configs (mode.views): train only this view (sagittal, coronal, axial).",
    ),
) -> None:
    """Train a model from a YAML config into a run directory (model.yaml + checkpoints/).

    A config with ``mode.views`` trains one 2D model per view into RUN/views/<axis>/ and, once every
    view is trained, makes RUN one multi-view model (fused by a weighted mean of the views).
    """
    run_training(config, out, set_, resume, view)


def plan(
    data: Path = typer.Argument(
        ..., help="The dataset: a folder (imagesTr/ + labelsTr/, or dataset.json), a dataset.json or a .csv."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The config to write (YAML, commented)."),
    labels: str = typer.Option(
        None,
        "--labels",
        help="Structure names: a label-set file, 'name,name' (values 1..K) or 'value:name,...' (default: dataset.json's).",
    ),
    budget_minutes: float = typer.Option(
        10.0, "--budget-minutes", help="Training time budget (all views together)."
    ),
    device: str = typer.Option(
        "auto", "--device", help="Where it will train: auto, cpu, cuda or cuda:N (sizes patch and batch)."
    ),
    memory_gb: float = typer.Option(
        None,
        "--memory-gb",
        help="Memory for one training step (default: 80 % of the GPU's, or a quarter of RAM up to 8 GB on CPU).",
    ),
) -> None:
    """Fingerprint a dataset (spacings, shapes, intensities, modality, classes, left/right pairs) and
    write a training config fitted to it and to the device, every choice commented with its reason."""
    import shlex
    import sys

    from scseg.engine.device import resolve_device
    from scseg.plan import plan_dataset

    resolved = resolve_device(device)
    if memory_gb is None:
        memory_gb = _default_memory_gb(resolved)
    command = "scseg plan " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    _, _, choices = plan_dataset(data, out, labels, budget_minutes, resolved.type, memory_gb, command)
    table = Table(title=f"scseg plan: {out}")
    table.add_column("choice")
    table.add_column("value", overflow="fold")
    table.add_column("why", overflow="fold")
    for choice in choices:
        table.add_row(choice.key, str(choice.value), choice.why)
    console.print(table)
    console.print(f"train it: scseg train {out} --out runs/<name>")


def _default_memory_gb(device) -> float:
    import torch

    if device.type == "cuda":
        return 0.8 * torch.cuda.get_device_properties(device).total_memory / 2**30
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return min(8.0, pages * size / 2**30 / 4)


def crossval(
    config: Path = typer.Argument(..., help="YAML training config (see configs/)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the folds, the fold table and the ensemble."
    ),
    folds: int = typer.Option(5, "--folds", help="Number of folds (by case, seeded by train.seed)."),
    all_cases: bool = typer.Option(
        False,
        "--all-cases",
        help="Fold every case (default: the config's training split only, so its validation cases stay "
        "unseen for evaluating the ensemble).",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config value: --set train.time_limit_minutes=2."
    ),
) -> None:
    """Cross-validation: one model per fold, a fold table (folds.csv / folds.md), and OUT as the
    ensemble of the folds (mean probabilities) for predict / evaluate / export-bundle / MONAI Label.
    Re-running the same command continues a stopped run."""
    from scseg.config import load_config
    from scseg.engine.crossval import crossval as run_crossval
    from scseg.engine.crossval import fold_table

    result = run_crossval(load_config(config, set_), out, folds=folds, all_cases=all_cases)
    header, rows = fold_table(result.fold_dice)
    table = Table(title=f"validation Dice per fold ({out / 'folds.csv'})")
    for col in header:
        table.add_column(col, justify="left" if col == "fold" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"ensemble of {len(result.fold_dice)} folds: {out} (scseg predict --model {out} ...)")


def demo(
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (default: runs/demo-<time>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a value of configs/demo.yaml."),
) -> None:
    """Generate synthetic phantoms and train an scSE U-Net on them (40 epochs, ~2 min on 2 CPU cores)."""
    config = REPO_ROOT / "configs" / "demo.yaml"
    if not config.is_file():
        raise fail(f"{config} not found: `scseg demo` runs from a source checkout (pip install -e .)")
    out = out or Path("runs") / f"demo-{dt.datetime.now():%Y%m%d-%H%M%S}"
    run_training(config, out, set_, resume=False)
