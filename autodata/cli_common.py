"""Helpers shared by the CLI modules (kept apart from ``autodata.cli`` to avoid import cycles),
and :class:`Commands`, the one place the CLI handles an :class:`AutodataError`."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text
from typer._click.core import Context  # typer vendors click; this is its context type
from typer.core import TyperGroup

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


def fail(exc: AutodataError) -> NoReturn:
    """Print ``exc`` as one line (and its ``cause_line``, if known, as the last line) and exit with
    its code. Neither is read as markup: they may quote a file, a server or a model."""
    console.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False, soft_wrap=True)
    if exc.cause_line:
        console.print(Text(exc.cause_line), highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


class Commands(TyperGroup):
    """The ``autodata`` command tree. Every command (and sub-command) runs inside
    :meth:`invoke`, so an :class:`AutodataError` from any of them ends here as :func:`fail`'s
    one line and exit code; commands themselves never catch it."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except AutodataError as exc:
            fail(exc)
