"""Helpers shared by the CLI modules (kept apart from ``autodata.cli`` to avoid import cycles)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from autodata.errors import AutodataError
from autodata.settings import Settings, load_settings

console = Console(stderr=True)


def settings_of(ctx: typer.Context) -> Settings:
    """Settings from the global ``--params`` option, wherever in the command tree ``ctx`` is."""
    return load_settings(ctx.find_root().obj["params"])


def say(text: str) -> None:
    """One status line on stderr, never wrapped (DVC logs are read as lines)."""
    console.print(text, highlight=False, soft_wrap=True)


def fail(exc: AutodataError) -> NoReturn:
    """Print ``exc`` as one line and exit with its code."""
    console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)
