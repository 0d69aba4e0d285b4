"""The ``autodata`` command line. Thin: parse options, load settings once, call flows.

The CLI modules (``autodata/cli*.py``) are the front door, the top of the house: the one part of
``autodata`` that imports ``flows/`` and ``tasks/``, lazily, inside the commands. An
:class:`AutodataError` from any command is handled once, by :class:`Commands`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from autodata import env
from autodata.cli_bench import bench_app
from autodata.cli_common import Commands, check_own_packages, console, say, settings_of
from autodata.cli_guard import guarded
from autodata.cli_lineage import lineage, recipes
from autodata.cli_optimize import optimize_app
from autodata.cli_schedule import schedule
from autodata.cli_stage import ingest, stage_app
from autodata.errors import ValidationFailed
from autodata.settings import EMBEDDED_MODEL, OPTIMIZER_ROLES, ROLES, Settings
from autodata.terminal import printable

env.configure()

app = typer.Typer(
    cls=Commands,
    help="Turn source documents into training data in the right difficulty zone.",
    no_args_is_help=True,
)
models_app = typer.Typer(
    help="Model backends: check them, prepare the embedded model.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
app.add_typer(stage_app, name="stage")
app.add_typer(bench_app, name="bench")
app.add_typer(optimize_app, name="optimize")
app.command()(lineage)
app.command()(recipes)
app.command()(schedule)
app.command()(ingest)  # also `autodata stage ingest`; the one model-free stage worth a shortcut
ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="Settings file (the recipe).")]


@app.callback()
def main(ctx: typer.Context, params: ParamsOpt = Path("params.yaml")) -> None:
    """autodata: Agentic Self-Instruct with a Challenger, weak/strong solvers and a Judge."""
    check_own_packages()
    ctx.obj = {"params": params}


def _uses_embedded(settings: Settings) -> bool:
    return any(settings.models.role(r).model == EMBEDDED_MODEL for r in ROLES)


@app.command()
def run(
    ctx: typer.Context,
    strict: Annotated[
        bool, typer.Option(help="Treat any unreadable source file as fatal.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """The whole pipeline: ingest, generate, accept, validate (Great Expectations), export."""
    from autodata import summary
    from autodata.progress import Reporter

    settings = settings_of(ctx)
    try:
        with guarded(settings, flows=True) as stop:
            from flows.pipeline import run_flow  # ~2 s, while Prefect's server starts

            metrics: dict[str, Any] = stop.run(run_flow(settings, Reporter(console, quiet), strict))
    except ValidationFailed as exc:  # the run's own metrics name the cause behind it
        exc.cause_line = summary.cause_of_failed_run(settings.paths.generate_metrics)
        raise
    summary.render(metrics, Console(), _uses_embedded(settings))
    paths = settings.paths
    say(
        f"wrote {paths.rounds_table}, {paths.accepted_table}, {paths.generate_metrics}, "
        f"{paths.validation_metrics}; exported to {paths.export}"
    )


@models_app.command("check")
def models_check(ctx: typer.Context) -> None:
    """Start or reach every role's backend and time one JSON-schema round trip each."""
    from autodata.llm.backends import check_models

    checks = asyncio.run(check_models(settings_of(ctx), announce=say))
    table = Table("role", "backend", "model", "latency", "status", title="models check")
    for c in checks:
        latency = f"{c.latency_s:.2f}s" if c.latency_s is not None else "-"
        # the detail quotes a server's text (the reply's excerpt and notes): never markup, its
        # control characters escaped
        mark = ("OK", "green") if c.ok else ("FAIL", "red")
        status = Text.assemble(mark, " ", printable(c.detail, lines=True))
        table.add_row(c.role, c.backend, Text(printable(c.model)), latency, status)
    Console().print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(3)


@models_app.command("prepare")
def models_prepare(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Also prepare this embedded model (repeatable), e.g. "
            "embedded:qwen2.5-coder-1.5b-instruct."
        ),
    ] = None,
) -> None:
    """Convert the embedded models params.yaml names (once) into directories vLLM can serve."""
    from autodata.llm.embedded import prepare_embedded

    settings = settings_of(ctx)
    named = [settings.models.role(r).model for r in (*ROLES, *OPTIMIZER_ROLES)]
    ready = prepare_embedded([*named, *(model or [])], settings.vllm.python, settings.paths.models)
    for name, where in ready:
        say(f"{name}: {where}")
    if not ready:
        console.print("no role uses an embedded model: nothing to prepare")
