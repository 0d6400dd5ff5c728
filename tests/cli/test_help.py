"""Every command's ``--help`` renders: help texts are rich markup, so a literal ``[/x]`` in one of
them (as in ``BASE/studies/UID[/series/UID]``) crashed ``scseg predict --help`` with a MarkupError."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from scseg.cli import app


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if hasattr(command, "commands"):  # a group (typer ships its own copy of click's classes)
            found += _commands(command, (*prefix, name))
    return found


def test_every_command_has_a_help_page() -> None:
    commands = _commands(typer.main.get_command(app))
    assert {("predict",), ("train",), ("label", "serve")} <= set(commands)
    runner = CliRunner()
    for command in [(), *commands]:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output[-2000:], result.exception)
        assert "Usage" in result.output, command
