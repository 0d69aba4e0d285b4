"""Helpers shared by the CLI modules (kept apart from ``autodata.cli`` to avoid import cycles),
and :class:`Commands`, the one place the CLI handles an :class:`AutodataError`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text
from typer._click.core import Context  # typer vendors click; this is its context type
from typer.core import TyperGroup

from autodata.errors import AutodataError, ConfigError
from autodata.settings import Settings, load_settings
from autodata.terminal import printable

console = Console(stderr=True)
HOME = Path(__file__).resolve().parents[1]  # where autodata/, flows/ and tasks/ are installed
OWN_PACKAGES = ("flows", "tasks")  # top-level import names of ours (docs/architecture.md)


def settings_of(ctx: typer.Context) -> Settings:
    """Settings from the global ``--params`` option, wherever in the command tree ``ctx`` is."""
    return load_settings(ctx.find_root().obj["params"])


def say(text: str) -> None:
    """One status line on stderr, never wrapped (DVC logs are read as lines); its text is
    printed as it is (paths and names may hold brackets rich would read as markup), its control
    characters escaped (:func:`autodata.terminal.printable`)."""
    console.print(printable(text), markup=False, highlight=False, soft_wrap=True)


def fail(exc: AutodataError) -> NoReturn:
    """Print ``exc`` as one line (and its ``cause_line``, if known, as the last line) and exit with
    its code. Neither is read as markup, and their control characters are escaped: they may
    quote a file, a server or a model."""
    line = Text.assemble(("error:", "red"), f" {printable(str(exc))}")
    console.print(line, highlight=False, soft_wrap=True)
    if exc.cause_line:
        console.print(Text(printable(exc.cause_line)), highlight=False, soft_wrap=True)
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


def check_own_packages(home: Path = HOME) -> None:
    """Raise :class:`ConfigError` when ``flows`` or ``tasks`` would be imported from anywhere
    but beside ``autodata`` (another distribution of that name in the environment, or a
    ``tasks.py`` earlier on ``sys.path``): the pipeline would fail later with a confusing
    ImportError. Finds the modules without importing them."""
    for name in OWN_PACKAGES:
        spec = importlib.util.find_spec(name)
        places = list(spec.submodule_search_locations or []) if spec else []
        if (home / name).resolve() not in {Path(p).resolve() for p in places}:
            found = (spec.origin or places[0]) if spec and (spec.origin or places) else "nowhere"
            raise ConfigError(
                f"the module '{name}' imports from {found}, not from {home / name}: another "
                f"package or a {name}.py shadows autodata's; install autodata in its own "
                "environment (scripts/setup.sh makes .venv) and run it outside that directory"
            )
