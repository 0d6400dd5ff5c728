"""The ``scseg`` command line. A thin shell: every subcommand calls a library function."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from scseg import __version__
from scseg.errors import EXIT_SOME_FAILED, ScsegError

app = typer.Typer(
    name="scseg",
    help="2D/3D medical image segmentation with squeeze & excitation (cSE, sSE, scSE) networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-paragraph error (no traceback) and return the Exit to raise."""
    # soft_wrap: never break file paths across lines; the newline clears a progress bar's line
    err_console.print(f"\n[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        console.print(f"scseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """scseg command line."""


@app.command()
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


def _dice_table(dice: dict[str, float]) -> Table:
    table = Table()
    table.add_column("structure")
    table.add_column("Dice", justify="right")
    for name, value in dice.items():
        table.add_row(name, f"{value:.4f}")
    if dice:
        table.add_row("[bold]mean", f"[bold]{sum(dice.values()) / len(dice):.4f}")
    return table


def _run_training(config_path: Path, out: Path, overrides: list[str], resume: bool) -> None:
    from scseg.config import load_config
    from scseg.engine.trainer import train

    try:
        config = load_config(config_path, overrides)
        result = train(config, out, resume=resume)
    except ScsegError as err:
        raise fail(str(err), err.exit_code) from None
    if int(os.environ.get("RANK", "0")) == 0:
        why = "time limit reached" if result.stopped_by_time else "all epochs done"
        console.print(f"validation Dice after {result.epochs} epochs ({why}):")
        console.print(_dice_table(result.final_dice))
        console.print(f"run directory: {result.run_dir} (best mean Dice {result.best_dice:.4f})")


@app.command()
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
) -> None:
    """Train a model from a YAML config into a run directory."""
    _run_training(config, out, set_, resume)


def _repo_configs() -> Path:
    return Path(__file__).resolve().parents[1] / "configs"


@app.command()
def demo(
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (default: runs/demo-<time>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a value of configs/demo.yaml."),
) -> None:
    """Generate synthetic phantoms and train an scSE U-Net on them (~2 min on 2 CPU cores)."""
    config = _repo_configs() / "demo.yaml"
    if not config.is_file():
        raise fail(f"{config} not found: `scseg demo` runs from a source checkout (pip install -e .)")
    out = out or Path("runs") / f"demo-{dt.datetime.now():%Y%m%d-%H%M%S}"
    _run_training(config, out, set_, resume=False)


@app.command()
def convert(
    dicom_dir: Path = typer.Argument(
        ..., help="Folder tree holding DICOM files (any depth, other files ignored)."
    ),
    out_dir: Path = typer.Argument(..., help="Where to write <patient>/<study>/<series>.nii.gz."),
) -> None:
    """Write one NIfTI per DICOM series (the reader `predict` uses), to check geometry or convert."""
    from scseg.io.convert import convert_folder

    try:
        results = convert_folder(dicom_dir, out_dir)
    except ScsegError as err:
        raise fail(str(err), err.exit_code) from None
    table = Table()
    for col in ("status", "series", "output / reason"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.status, r.source, str(r.output) if r.output else r.detail)
    console.print(table)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def predict(
    model: Path = typer.Option(
        ..., "--model", "-m", help="Run directory written by `scseg train`, or a bundle from `export-bundle`."
    ),
    input_: Path = typer.Option(
        ...,
        "--input",
        "-i",
        help="A DICOM folder tree (any depth, other files ignored), one series folder, a NIfTI file "
        "or a folder of NIfTI files.",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output folder (summary.csv + one folder per case)."
    ),
    device: str = typer.Option("auto", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    views: str = typer.Option(
        "", help="2D models: average the probabilities of several slicing views, e.g. axial,coronal,sagittal."
    ),
    probabilities: bool = typer.Option(
        False, "--probabilities", help="Also write probabilities.nii.gz (one float volume per class)."
    ),
    precision: str = typer.Option(
        "auto",
        help="auto (float16 on CUDA, bfloat16 on CPUs with native bf16, else float32), float32 or bfloat16.",
    ),
) -> None:
    """Segment DICOM series and NIfTI files: labels.nii.gz, seg.dcm, volumes.csv, preview.png per case.

    Exit codes: 0 every case segmented (localizers and non-image objects are skipped, not failed);
    5 some case failed (see summary.csv); 2 bad options; 3 nothing to segment; 4 bad run directory.
    """
    from scseg.engine.predict_folder import predict_path
    from scseg.engine.predictor import Predictor

    view_list = [v.strip() for v in views.split(",") if v.strip()] or None
    try:
        predictor = Predictor(model, device=device, precision=precision)
        records = predict_path(predictor, input_, output, views=view_list, probabilities=probabilities)
    except ScsegError as err:
        raise fail(str(err), err.exit_code) from None
    table = Table(title=f"scseg predict: {output / 'summary.csv'}")
    for col in ("status", "case", "seconds", "output / reason"):
        table.add_column(col, overflow="fold")
    for r in records:
        detail = r.output if r.status == "done" else r.message
        table.add_row(r.status, r.series or r.source, f"{r.seconds:.1f}", detail)
    console.print(table)
    if any(r.status == "failed" for r in records):
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def evaluate(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for per_case.csv, summary.json/.md, dice_boxplot.png."
    ),
    pred: Path = typer.Option(
        None, "--pred", help="Predicted label maps: a folder (or `scseg predict` output)."
    ),
    ref: Path = typer.Option(None, "--ref", help="Reference label maps, matched to --pred by case name."),
    labels: Path = typer.Option(
        None, "--labels", help="names.yaml: label value -> name (default: the model's names, else label_<n>)."
    ),
    model: Path = typer.Option(
        None, "--model", "-m", help="Run directory: predict --data's split, then score it."
    ),
    data: Path = typer.Option(None, "--data", help="With --model: the YAML config whose data to predict."),
    split: str = typer.Option("val", help="With --model: val (the config's validation split) or all."),
    device: str = typer.Option("auto", help="With --model: auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", help="With --model: auto, float32 or bfloat16 (as for predict)."),
) -> None:
    """Dice, HD95, ASSD (mm) and volume difference per case and structure (MONAI metrics).

    Either --pred and --ref (label maps matched by case name), or --model and --data.
    """
    from scseg.evaluation.evaluate import evaluate_folders, evaluate_model

    folders, model_mode = pred is not None or ref is not None, model is not None or data is not None
    if (
        folders == model_mode
        or (folders and (pred is None or ref is None))
        or (model_mode and (model is None or data is None))
    ):
        raise fail("give either --pred and --ref, or --model and --data")
    if split not in ("val", "all"):
        raise fail(f"--split {split!r}: expected val or all")
    try:
        if folders:
            result = evaluate_folders(pred, ref, out, labels)
        else:
            result = evaluate_model(model, data, out, split=split, device=device, precision=precision)
    except ScsegError as err:
        raise fail(str(err), err.exit_code) from None
    console.print(
        _dice_table(
            {
                k: v["dice_mean"]
                for k, v in result.summary["per_structure"].items()
                if v["dice_mean"] is not None
            }
        )
    )
    if result.unpredicted:
        console.print(
            f"[yellow]{len(result.unpredicted)} reference case(s) had no prediction and were not scored"
        )
    console.print(f"report: {out / 'summary.md'}")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@app.command()
def ablate(
    config: Path = typer.Argument(..., help="YAML training config (3D if --dims has 3; 2D cells slice it)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the cells, results.md and results.json."),
    archs: str = typer.Option("unet,sdnet,densenet", help="Architectures, comma-separated."),
    se: str = typer.Option("none,cse,sse,scse", help="SE kinds, comma-separated."),
    dims: str = typer.Option("3", help="2, 3 or 2,3."),
    time_limit_minutes: float = typer.Option(..., "--time-limit-minutes", help="Training budget per cell."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value for every cell (repeatable)."),
) -> None:
    """Train and evaluate every architecture x SE kind with one seed, split and budget; resumable."""
    from scseg.evaluation.ablation import ablate as run_ablation

    try:
        dim_values = [int(d) for d in _csv(dims)]
    except ValueError:
        raise fail(f"--dims {dims!r}: expected 2, 3 or 2,3") from None
    if not dim_values or set(dim_values) - {2, 3}:
        raise fail(f"--dims {dims!r}: expected 2, 3 or 2,3")
    try:
        run_ablation(config, _csv(archs), _csv(se), dim_values, time_limit_minutes, out, device, set_)
    except ScsegError as err:
        raise fail(str(err), err.exit_code) from None
    console.print((out / "results.md").read_text(), markup=False, highlight=False)


@app.command("export-bundle")
def export_bundle(
    run_dir: Path = typer.Argument(..., help="Run directory written by `scseg train`."),
    out_dir: Path = typer.Argument(..., help="Bundle folder to write (replaced as a whole if it exists)."),
    torchscript: bool = typer.Option(False, "--torchscript", help="Also write models/model.ts (traced)."),
) -> None:
    """Write a MONAI bundle: configs/{metadata,inference}.json, models/model.pt, docs/README.md."""
    from scseg.bundle import export_bundle as export

    try:
        export(run_dir, out_dir, torchscript=torchscript)
    except ScsegError as err:
        raise fail(str(err), err.exit_code) from None
    console.print(f"bundle: {out_dir}")
    console.print(
        f"run it: python -m monai.bundle run --config_file {out_dir}/configs/inference.json "
        f"--bundle_root {out_dir} --dataset_dir IMAGES_DIR --output_dir OUT_DIR",
        highlight=False,
        soft_wrap=True,
    )


def _add_subcommands() -> None:
    from scseg.label.cli import label_app

    app.add_typer(label_app, name="label")


_add_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
