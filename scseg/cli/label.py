"""``scseg label ...``: MONAI Label commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from scseg.cli.output import ScsegGroup, fail

label_app = typer.Typer(
    cls=ScsegGroup, help="MONAI Label: serve scseg models to 3D Slicer / OHIF.", no_args_is_help=True
)
console = Console(stderr=True)


@label_app.command()
def serve(
    model: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="[NAME=]PATH of a run directory, an scseg bundle or a .pt checkpoint (repeatable; NAME "
        "defaults to the folder name).",
    ),
    studies: Path = typer.Option(
        ..., "--studies", "-s", help="Folder of NIfTI files and/or DICOM series (any depth)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8000, help="Port."),
    device: str = typer.Option("auto", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    app_dir: Path = typer.Option(
        None,
        "--app-dir",
        help="Folder for the server's app, logs, sessions, caches and uploads (default: ~/.cache/scseg/monailabel-app).",
    ),
    token: str = typer.Option(
        None,
        "--token",
        envvar="SCSEG_LABEL_TOKEN",
        show_envvar=True,
        help="Shared secret every request must send as 'Authorization: Bearer TOKEN' (default: none).",
    ),
    max_upload_mb: int = typer.Option(256, "--max-upload-mb", min=1, help="Largest label upload accepted."),
    versions: Path = typer.Option(
        None,
        "--versions",
        help="Folder for the model versions trainings write (default: APP_DIR/versions); see `scseg label versions`.",
    ),
) -> None:
    """Start the MONAI Label server with one infer model per --model (stop it with Ctrl-C or SIGTERM)."""
    from scseg.label.compat import missing_label_extra
    from scseg.label.server import check_models, default_app_dir, parse_models, run_server
    from scseg.label.studies import prepare_studies

    hint = missing_label_extra()
    if hint:
        raise fail(hint, 2)
    served = parse_models(model)
    check_models(served)
    found = prepare_studies(studies)
    table = Table(title=f"scseg label serve on http://{host}:{port}")
    table.add_column("model")
    table.add_column("path", overflow="fold")
    for entry in served:
        table.add_row(entry.name, str(entry.path))
    console.print(table)
    console.print(f"studies: {len(found.images)} image(s) served from {found.datastore}")
    for problem in found.problems:
        console.print(f"[yellow]not served:[/] {problem}", highlight=False, soft_wrap=True)
    if not token:
        console.print(
            "[yellow]no --token:[/] every local user (and, with --host 0.0.0.0, the network) can run "
            "inference and save labels; see README, MONAI Label",
            highlight=False,
        )
    app_dir = app_dir or default_app_dir()
    run_server(
        served,
        studies,
        found.datastore,
        app_dir,
        host,
        port,
        device,
        token,
        max_upload_mb,
        versions or app_dir / "versions",
    )


@label_app.command("versions")
def versions_command(
    model: str = typer.Argument(..., help="[NAME=]PATH as given to `scseg label serve --model`."),
    versions: Path = typer.Option(
        None,
        "--versions",
        help="The server's --versions folder (default: ~/.cache/scseg/monailabel-app/versions).",
    ),
    use: str = typer.Option(
        None,
        "--use",
        help="Serve this version from the next server start on (roll back: v0 is the model itself).",
    ),
) -> None:
    """List a served model's versions (trainings from saved labels), or roll back with --use."""
    from scseg.errors import ScsegError
    from scseg.label.server import default_app_dir, parse_models
    from scseg.label.versions import ModelVersions

    (served,) = parse_models([model])
    history = ModelVersions((versions or default_app_dir() / "versions") / served.name, served.path)
    try:
        if use:
            path = history.use(use)
            console.print(f"{served.name}: the server serves {use} ({path}) from its next start")
    except ScsegError as err:
        raise fail(str(err)) from None
    table = Table(title=f"versions of {served.name} (current: {history.current})")
    for column in ("version", "created", "from", "held-aside Dice", "accepted", "reason"):
        table.add_column(column, overflow="fold")
    table.add_row("v0", "", "", "", "", f"the model given: {served.path}")
    for entry in history.history["versions"]:
        dice = f"{entry.get('dice_before')} -> {entry.get('dice_after')}"
        table.add_row(entry["version"], entry.get("created", ""), entry.get("from_version", ""), dice,
                      "yes" if entry.get("accepted") else "no", entry.get("reason", ""))  # fmt: skip
    Console().print(table)
