"""The ``scseg`` command line. A thin shell: every subcommand calls a library function."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from scseg import __version__

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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
