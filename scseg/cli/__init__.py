"""The ``scseg`` command line: a leaf package that nothing in scseg imports.

A thin shell: every subcommand calls a library function; errors rise as
:class:`~scseg.errors.ScsegError` and :class:`~scseg.cli.output.ScsegGroup` turns them into one
paragraph and the error's exit code.
"""

from __future__ import annotations

import typer

from scseg import __version__
from scseg.allocator import current_allocator
from scseg.cli import evaluation, inference, training
from scseg.cli.label import label_app
from scseg.cli.output import ScsegGroup, console

app = typer.Typer(
    name="scseg",
    cls=ScsegGroup,
    help="2D/3D medical image segmentation with squeeze & excitation (cSE, sSE, scSE) networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"scseg {__version__} (allocator: {current_allocator()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """scseg command line."""


app.command()(training.models)
app.command()(training.train)
app.command()(training.crossval)
app.command()(training.plan)
app.command()(training.demo)
app.command()(inference.convert)
app.command()(inference.predict)
app.command()(evaluation.evaluate)
app.command()(evaluation.ablate)
app.command("export-bundle")(inference.export_bundle)
app.add_typer(label_app, name="label")


def main() -> None:
    """Run the command line (``scseg.__main__.main``, the console entry point, chose the allocator)."""
    app()


__all__ = ["app", "main"]
