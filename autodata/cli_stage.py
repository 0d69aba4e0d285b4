"""``autodata stage <name>``: run exactly one pipeline stage (what each DVC stage's ``cmd`` calls).

Each command loads settings from the global ``--params``, runs its stage's read/write wrapper
(in ``tasks/<stage>.py``; generate's in :mod:`flows.generate`) and prints one line; an
:class:`AutodataError` becomes one line and a non-zero exit (``autodata.cli_common.Commands``),
which stops ``dvc repro`` at that stage. Imports are lazy: ``autodata --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from autodata.cli_common import console, say, settings_of
from autodata.cli_guard import guarded
from autodata.settings import Settings

T = TypeVar("T")

stage_app = typer.Typer(
    help="Run one pipeline stage (ingest, generate, accept, validate, export); dvc.yaml calls these.",
    no_args_is_help=True,
)


def _run(ctx: typer.Context, stage: Callable[[Settings], T]) -> tuple[Settings, T]:
    """Load the settings and run ``stage`` on them under the run lock and the stop handling
    (:func:`autodata.cli_guard.guarded`); the settings and what the stage returned."""
    settings = settings_of(ctx)
    with guarded(settings):
        return settings, stage(settings)


@stage_app.command()
def ingest(
    ctx: typer.Context,
    strict: Annotated[
        bool, typer.Option(help="Treat any unreadable source file as fatal.")
    ] = False,
) -> None:
    """Read the sources directory into the sources table (no model calls)."""
    from tasks.ingest import ingest_to_files, skipped_lines

    settings, (n, skipped) = _run(ctx, lambda s: ingest_to_files(s.paths, s.ingest, strict=strict))
    for line in skipped_lines(settings.paths):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    say(f"ingest: {n} sources → {settings.paths.sources_table}; {skipped} skipped (named above)")


@stage_app.command()
def generate(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run the Challenger/solver/judge rounds over the sources table (the only LLM stage)."""
    from autodata.progress import Reporter

    settings = settings_of(ctx)
    with guarded(settings, flows=True) as stop:
        from flows.generate import generate_stage  # while Prefect's server starts

        out = stop.run(generate_stage(settings, Reporter(console, quiet)))
    say(
        f"generate: {out['candidates']} candidates in {out['rounds']} rounds, "
        f"{out['http_requests']} HTTP requests → {settings.paths.interim}"
    )


@stage_app.command()
def accept(ctx: typer.Context) -> None:
    """Recompute every decision under the current gate from stored judgments (no LLM call)."""
    from autodata.env import git_revision
    from tasks.accept import finalize

    settings, result = _run(ctx, lambda s: finalize(s, git_revision()))
    paths = settings.paths
    say(
        f"accept: {result['accepted']} of {result['candidates']} candidates accepted → "
        f"{paths.accepted_table}, {paths.rounds_table}, {paths.generate_metrics}"
    )


@stage_app.command()
def validate(ctx: typer.Context) -> None:
    """Run the Great Expectations gate; exit non-zero (code 4) when it fails."""
    from tasks.validate import raise_if_failed, validate_stage

    settings, report = _run(ctx, validate_stage)
    raise_if_failed(report)
    skipped = report.counts["not_applicable"]
    checked = len(report.expectations) - skipped
    say(
        f"validate: passed ({checked} expectations checked, {skipped} not applicable) → "
        f"{settings.paths.validation_metrics}, {report.data_docs}"
    )


@stage_app.command()
def export(ctx: typer.Context) -> None:
    """Write sft.jsonl, rl.jsonl, the HF dataset, plots and the dataset card."""
    from tasks.export import export_stage

    settings, out = _run(ctx, export_stage)
    say(f"export: {out['sft_rows']} rows → {settings.paths.export}; plots → {settings.paths.plots}")
