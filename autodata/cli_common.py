"""Helpers shared by the CLI modules (kept apart from ``autodata.cli`` to avoid import cycles)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

from autodata.errors import AutodataError
from autodata.settings import Settings, load_settings

console = Console(stderr=True)


def settings_of(ctx: typer.Context) -> Settings:
    """Settings from the global ``--params`` option, wherever in the command tree ``ctx`` is."""
    return load_settings(ctx.find_root().obj["params"])


def say(text: str) -> None:
    """One status line on stderr, never wrapped (DVC logs are read as lines); its text is
    printed as it is (paths and names may hold brackets rich would read as markup)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def fail(exc: AutodataError, cause: str | None = None) -> NoReturn:
    """Print ``exc`` as one line (and, if given, the ``cause`` behind it as the last line) and
    exit with its code. Neither is read as markup: they may quote a file, a server or a model."""
    console.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False, soft_wrap=True)
    if cause:
        console.print(Text(cause), highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)
