"""What every command shares: the consoles, one-paragraph errors, and the group that turns
:class:`~scseg.errors.ScsegError` into that paragraph and the error's exit code (the one place that
does; commands just let the error rise)."""

from __future__ import annotations

from typing import Any

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from scseg.errors import ScsegError
from scseg.io.names import printable

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-paragraph error (no traceback) and return the Exit to raise."""
    # soft_wrap: never break file paths across lines; the newline clears a progress bar's line
    err_console.print(f"\n[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class ScsegGroup(TyperGroup):
    """The ``scseg`` command group: a :class:`ScsegError` raised by any subcommand (nested groups
    included, they run inside this ``invoke``) becomes :func:`fail` with its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ScsegError as err:
            raise fail(printable(str(err)), err.exit_code) from None


def dice_table(dice: dict[str, float], cases: dict[str, int] | None = None) -> Table:
    """Structure | Dice rows plus the mean; with ``cases``, how many cases each Dice rests on."""
    table = Table()
    table.add_column("structure")
    table.add_column("Dice", justify="right")
    if cases is not None:
        table.add_column("cases", justify="right")
    for name, value in dice.items():
        table.add_row(name, f"{value:.4f}", *([str(cases.get(name, 0))] if cases is not None else []))
    if dice:
        table.add_row(
            "[bold]mean", f"[bold]{sum(dice.values()) / len(dice):.4f}", *([""] if cases is not None else [])
        )
    return table


def csv_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]
