"""``scseg evaluate``, ``scseg ablate``."""

from __future__ import annotations

from pathlib import Path

import typer

from scseg.cli.inference import MODEL_HELP
from scseg.cli.output import console, csv_list, dice_table, fail


def evaluate(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for per_case.csv, summary.json/.md, dice_boxplot.png."
    ),
    pred: Path = typer.Option(
        None, "--pred", help="Predicted label maps: a folder (or `scseg predict` output)."
    ),
    ref: Path = typer.Option(None, "--ref", help="Reference label maps, matched to --pred by case name."),
    labels: Path = typer.Option(
        None,
        "--labels",
        help="names.yaml: label value -> name, 0 (background) ignored (default: the model's names, else label_<n>).",
    ),
    annotated: str = typer.Option(
        None,
        "--annotated",
        help="With --pred/--ref, partial labels: a CSV (case column, one 0/1 column per structure name) or "
        "'nonempty'; a structure is scored only in the cases that annotated it (with --model: the "
        "config's data.annotated).",
    ),
    model: Path = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Predicts --data's split."),
    data: Path = typer.Option(None, "--data", help="With --model: the YAML config whose data to predict."),
    split: str = typer.Option("val", help="With --model: val (the config's validation split) or all."),
    device: str = typer.Option("auto", help="With --model: auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", help="With --model: auto, float32 or bfloat16 (as for predict)."),
    tta: bool = typer.Option(False, "--tta", help="With --model: test-time mirroring (as for predict)."),
    mc_dropout: int = typer.Option(0, "--mc-dropout", help="With --model: Monte Carlo dropout samples."),
    calibrate_qc: bool = typer.Option(
        False,
        "--calibrate-qc",
        help="With several passes (--tta, --mc-dropout, an ensemble): store in the model the uncertainty "
        "threshold that best flags structures with Dice below --qc-dice; `scseg predict` then flags cases.",
    ),
    qc_dice: float = typer.Option(
        0.7, "--qc-dice", help="With --calibrate-qc: the Dice that counts as a failure."
    ),
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
    if folders:
        result = evaluate_folders(pred, ref, out, labels, annotated=annotated)
    else:
        result = evaluate_model(
            model, data, out, split=split, device=device, precision=precision, tta=tta,
            mc_dropout=mc_dropout, calibrate_qc=calibrate_qc, qc_dice=qc_dice,
        )  # fmt: skip
    per_structure = result.summary["per_structure"].items()
    scored = {k: v for k, v in per_structure if v["dice_mean"] is not None}
    console.print(
        dice_table({k: v["dice_mean"] for k, v in scored.items()}, {k: v["cases"] for k, v in scored.items()})
    )
    if result.unpredicted:
        console.print(
            f"[yellow]{len(result.unpredicted)} reference case(s) had no prediction and were not scored"
        )
    if result.uncertainty is not None:
        rho = result.uncertainty["spearman"]
        console.print(
            f"uncertainty vs Dice: Spearman {rho:.3f} over {result.uncertainty['points']} structures"
            if rho is not None
            else "uncertainty vs Dice: too few scored structures for a correlation"
        )
        qc = result.uncertainty.get("qc")
        if qc is not None:
            console.print(
                f"QC threshold {qc['threshold']:.4f} (Dice < {qc['dice_cutoff']:g} counts as a failure; "
                f"sensitivity {qc['sensitivity']}, false alarms {qc['false_alarms']}) stored in "
                f"{result.uncertainty['stored_in']}"
            )
    console.print(f"report: {out / 'summary.md'}")


def ablate(
    config: Path = typer.Argument(..., help="YAML training config (3D if --dims has 3; 2D cells slice it)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the cells, results.md and results.json."),
    archs: str = typer.Option("unet,sdnet,densenet", help="Architectures, comma-separated."),
    se: str = typer.Option("none,cse,sse,scse", help="SE kinds, comma-separated."),
    dims: str = typer.Option("3", help="2, 3 or 2,3."),
    time_limit_minutes: float = typer.Option(None, "--time-limit-minutes", help="Training budget per cell."),
    epochs: int = typer.Option(
        None, "--epochs", min=1, help="Train every cell this many epochs (instead of a time limit)."
    ),
    seeds: str = typer.Option(
        None, "--seeds", help="Train every cell once per seed, e.g. 0,1,2 (default: the config's seed)."
    ),
    vary: str = typer.Option(
        None,
        "--vary",
        help="Sweep one option over the SE cells, e.g. model.se_reduction=2,4,8,16. The 'none' cells are "
        "not swept: they train once per seed with the config's value (use --set to change them too). "
        "A value a cell has anyway (e.g. the default r=2) is the plain cell, trained once. ARCH:VALUE is one "
        "architecture's own value, e.g. train.max_epochs=unet:816,resunet:840 (each its own budget, one table).",
    ),
    results: Path = typer.Option(
        None,
        "--results",
        help="Keep each finished cell as JSON here (e.g. docs/results/STUDY): re-table or resume from them.",
    ),
    table_only: bool = typer.Option(
        False, "--table-only", help="Train nothing: table the finished cells, name the others."
    ),
    into: Path = typer.Option(
        None,
        "--into",
        help="Also put the tables into this Markdown file, between '<!-- scseg ablate tables: NAME -->' and "
        "'<!-- scseg ablate tables end: NAME -->' (NAME: the --results folder's name, else --out's, then "
        "', vary KEY' for a sweep); their headings nest under the section that holds the markers.",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value for every cell (repeatable)."),
) -> None:
    """Train and evaluate every architecture x SE kind [x seed] [x swept option] with the same split
    and budget; resumable."""
    from scseg.evaluation.ablation import ablate as run_ablation

    try:
        dim_values = [int(d) for d in csv_list(dims)]
    except ValueError:
        raise fail(f"--dims {dims!r}: expected 2, 3 or 2,3") from None
    if not dim_values or set(dim_values) - {2, 3}:
        raise fail(f"--dims {dims!r}: expected 2, 3 or 2,3")
    try:
        seed_values = [int(x) for x in csv_list(seeds)] if seeds else None
    except ValueError:
        raise fail(f"--seeds {seeds!r}: expected integers, e.g. 0,1,2") from None
    if (time_limit_minutes is None) == (epochs is None):
        raise fail("give --time-limit-minutes or --epochs (one of them)")
    run_ablation(config, csv_list(archs), csv_list(se), dim_values, time_limit_minutes, out, device, set_,
                 seed_values, epochs, vary, results, table_only, into)  # fmt: skip
    console.print((out / "results.md").read_text(), markup=False, highlight=False)
