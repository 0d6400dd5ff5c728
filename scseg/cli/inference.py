"""``scseg convert``, ``scseg predict``, ``scseg export-bundle``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import typer
from rich.table import Table

from scseg.cli.output import console
from scseg.errors import EXIT_SOME_FAILED

DOWNLOADS = ".scseg-dicomweb"  # under --output: the series retrieved for --input URL

MODEL_HELP = (
    "A trained model: run directory (`scseg train`), bundle (`scseg export-bundle`) or .pt checkpoint."
)


def convert(
    dicom_dir: Path = typer.Argument(
        ..., help="Folder tree holding DICOM files (any depth, other files ignored)."
    ),
    out_dir: Path = typer.Argument(..., help="Where to write <patient>/<study>/<series>.nii.gz."),
) -> None:
    """Write one NIfTI per DICOM series (the reader `predict` uses), to check geometry or convert."""
    from scseg.io.convert import convert_folder

    results = convert_folder(dicom_dir, out_dir)
    table = Table()
    for col in ("status", "series", "output / reason"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.status, r.source, str(r.output) if r.output else r.detail)
    console.print(table)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_SOME_FAILED)


def predict(
    model: Path = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    input_: str = typer.Option(
        ...,
        "--input",
        "-i",
        help="A DICOM folder tree (any depth, other files ignored), one series folder, a NIfTI file, "
        "a folder of NIfTI files, or a DICOMweb study / series URL (BASE/studies/UID or BASE/studies/UID/series/UID).",
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
    seg_type: str = typer.Option(
        "binary",
        help="DICOM SEG of a series: binary (the label map) or fractional (each structure's probability).",
    ),
    seg_compression: str = typer.Option(
        "none", help="DICOM SEG pixel data, lossless: none, jpeg2000, or rle (fractional SEGs only)."
    ),
    rtstruct: bool = typer.Option(
        False, "--rtstruct", help="DICOM series: also rtstruct.dcm, an RT structure set (contours per slice)."
    ),
    push: str = typer.Option(
        "",
        "--push",
        help="DICOMweb base URL (e.g. https://pacs/dicom-web): store each series' SEG / RT structure set "
        "there with STOW-RS. Credentials: SCSEG_DICOMWEB_TOKEN, SCSEG_DICOMWEB_USER + _PASSWORD, or "
        "SCSEG_DICOMWEB_CREDENTIALS (a file).",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Segment every case again (default: cases already done by this model are kept).",
    ),
    tta: bool = typer.Option(
        False,
        "--tta",
        help="Test-time augmentation: also mirror each volume along the axes training mirrored along "
        "(left / right structures swapped back) and average; adds per-structure uncertainty.",
    ),
    mc_dropout: int = typer.Option(
        0, "--mc-dropout", help="Monte Carlo dropout samples (models trained with dropout); adds uncertainty."
    ),
    uncertainty_map: bool = typer.Option(
        False,
        "--uncertainty-map",
        help="With several passes: also uncertainty.nii.gz (share of passes that disagree).",
    ),
    qc_threshold: float = typer.Option(
        None,
        "--qc-threshold",
        help="Flag cases whose most uncertain structure exceeds this (default: the model's calibrated "
        "threshold, see `scseg evaluate --calibrate-qc`).",
    ),
    keep_download: bool = typer.Option(
        False,
        "--keep-download",
        help="With --input URL: keep the retrieved series in OUTPUT/.scseg-dicomweb/ (by default they "
        "are removed when the run ends, also when it fails).",
    ),
) -> None:
    """Segment DICOM series and NIfTI files: labels.nii.gz, seg.dcm (and rtstruct.dcm), volumes.csv,
    preview.png per case. A batch resumes where it stopped; `torchrun --nproc_per_node=N -m scseg
    predict ...` spreads it over N processes (and machines: --nnodes).

    Exit codes: 0 every case segmented (localizers and non-image objects are skipped, not failed);
    5 some case failed (see summary.csv); 2 bad options; 3 nothing to segment; 4 bad model.
    """
    from scseg.engine.distributed import barrier
    from scseg.engine.predict_folder import SegOptions, predict_path
    from scseg.engine.predictor import Predictor
    from scseg.errors import ConfigError
    from scseg.io import dicomweb
    from scseg.io.names import short_hash

    view_list = [v.strip() for v in views.split(",") if v.strip()] or None
    seg = SegOptions(seg_type, seg_compression, rtstruct)  # checked before the model is loaded
    shard = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: each rank its own share of the cases
        from scseg.engine.device import resolve_device
        from scseg.engine.distributed import init_distributed

        if resolve_device(device).type == "cuda" and device in ("auto", "cuda"):
            device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
        shard = init_distributed(resolve_device(device))
    if push and not dicomweb.is_dicomweb_url(push):
        raise ConfigError(f"--push {push}: expected the http(s) base URL of a DICOMweb service")
    remote = dicomweb.is_dicomweb_url(input_)
    if remote:
        dicomweb.parse_dicomweb_url(input_)  # a malformed URL fails before the model is loaded
    predictor = Predictor(
        model, device=device, precision=precision, tta=tta, mc_dropout=mc_dropout, qc_threshold=qc_threshold
    )
    if uncertainty_map and predictor.passes == 1:
        raise ConfigError(
            "--uncertainty-map needs several passes to compare: add --tta or --mc-dropout N, or use an "
            "ensemble model (scseg crossval)"
        )
    main = shard is None or shard.is_main
    with contextlib.ExitStack() as download:
        source = Path(input_)
        if remote:  # retrieved into the output folder (WADO-RS), then read like any DICOM folder
            source = download.enter_context(
                dicomweb.downloaded(
                    input_, output / DOWNLOADS / short_hash(input_), keep_download, fetch=main
                )
            )
            if shard is not None:
                download.callback(barrier, shard)  # every rank has read them before rank 0 removes them
                barrier(shard)
        records = predict_path(
            predictor, source, output, views=view_list, probabilities=probabilities, seg=seg,
            overwrite=overwrite, shard=shard, progress=main, push=push or None, uncertainty_map=uncertainty_map,
        )  # fmt: skip
    if shard is not None and not shard.is_main:  # rank 0 reports for all
        raise typer.Exit(EXIT_SOME_FAILED if any(r.status == "failed" for r in records) else 0)
    table = Table(title=f"scseg predict: {output / 'summary.csv'}")
    passes = predictor.passes > 1
    for col in ("status", "case", "seconds", *(("uncertainty", "qc") if passes else ()), "output / reason"):
        table.add_column(col, overflow="fold")
    for r in records:
        detail = r.output if r.status == "done" and r.qc != "flagged" else r.message
        scores = (f"{r.uncertainty:.3f}" if r.uncertainty is not None else "", r.qc) if passes else ()
        table.add_row(r.status, r.series or r.source, f"{r.seconds:.1f}", *scores, detail)
    console.print(table)
    if any(r.status == "failed" for r in records):
        raise typer.Exit(EXIT_SOME_FAILED)


def export_bundle(
    model: Path = typer.Argument(..., help="Run directory written by `scseg train` (or a .pt checkpoint)."),
    out_dir: Path = typer.Argument(..., help="Bundle folder to create (must not exist, or be empty)."),
    torchscript: bool = typer.Option(False, "--torchscript", help="Also write models/model.ts (traced)."),
) -> None:
    """Write a MONAI bundle: configs/{metadata,inference}.json, configs/scseg_model.yaml, models/model.pt."""
    from scseg.bundle import export_bundle as export

    export(model, out_dir, torchscript=torchscript)
    console.print(f"bundle: {out_dir}")
    console.print(
        f"run it: python -m monai.bundle run --config_file {out_dir}/configs/inference.json "
        f"--bundle_root {out_dir} --dataset_dir IMAGES_DIR --output_dir OUT_DIR",
        highlight=False,
        soft_wrap=True,
    )
