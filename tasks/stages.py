"""Stage wrappers: read a stage's inputs from the paths in settings, call its core, write outputs.

One function per pipeline stage, shared by ``autodata stage <name>`` (one DVC stage each) and
by ``autodata run`` (one Prefect flow over all of them), so both run exactly the same code.
The cores live in their own modules (``tasks.ingest``, ``flows.generate``, ``tasks.outputs``,
``tasks.validate``, ``tasks.export``); nothing here decides anything about the data.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from autodata import recipes, schemas
from autodata._killpoints import killpoint
from autodata.errors import SourceError
from autodata.settings import Settings
from autodata.stagefile import read_or_empty

if TYPE_CHECKING:
    from autodata.progress import Reporter
    from tasks.validate import ValidationReport


def read_sources(settings: Settings) -> pl.DataFrame:
    """The sources table written by ingest; a missing one says which stage to run."""
    path = settings.paths.sources_table
    if not path.exists():
        raise SourceError(f"{path} not found; run `autodata stage ingest` (or `dvc repro`) first")
    return schemas.check(pl.read_parquet(path), schemas.SOURCES, "sources")


async def generate(settings: Settings, reporter: Reporter) -> dict[str, int]:
    """Run the round loop over the sources table; write the loop tables and a recipe snapshot."""
    from flows.generate import generate_flow

    loop = await generate_flow(settings, read_sources(settings), reporter)
    recipes.write_snapshot(settings)
    return {
        "candidates": loop["challenges"].height,
        "rounds": int(loop["loop_rounds"]["round"].max() or 0),  # type: ignore[arg-type]
        "http_requests": sum(c.get("calls", 0) for c in loop.calls.values()),
    }


def accept(
    settings: Settings, git_rev: str, calls: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    """Recompute decisions under the current gate (no LLM call) and record the recipes.

    ``calls``: the run's own call counts per role (``autodata run``); None reads those the
    generate stage wrote (``autodata stage accept``)."""
    from tasks.outputs import finalize

    result = finalize(settings, git_rev, calls)
    recipes.record_recipe(settings, recipes.registry_path(settings.paths), git_rev)
    return result


def _accepted_and_rounds(settings: Settings) -> tuple[pl.DataFrame, pl.DataFrame]:
    paths = settings.paths
    if not paths.rounds_table.exists():
        raise SourceError(
            f"{paths.rounds_table} not found; run `autodata stage accept` (or `dvc repro`) first"
        )
    accepted = read_or_empty(paths.accepted_table, schemas.ACCEPTED, "accepted")
    return accepted, read_or_empty(paths.rounds_table, schemas.ROUNDS, "rounds")


def validate(settings: Settings) -> ValidationReport:
    """Run the Great Expectations gate; write ``metrics/validation.json`` and Data Docs.

    Returns the report without raising; :func:`tasks.validate.raise_if_failed` stops export.
    """
    from tasks.validate import validate as run_suites
    from tasks.validate import write_report

    accepted, rounds = _accepted_and_rounds(settings)
    report = run_suites(accepted, rounds, settings.validate_, settings.paths.data_docs)
    killpoint("validate:before-write")
    write_report(report, settings.paths.validation_metrics)
    return report


def export(settings: Settings) -> dict[str, Any]:
    """Write the training files, plots and dataset card from the accepted set."""
    from tasks.export import export as run_export

    accepted, rounds = _accepted_and_rounds(settings)
    paths = settings.paths
    summary = (
        json.loads(paths.generate_metrics.read_text()) if paths.generate_metrics.exists() else {}
    )
    killpoint("export:before-write")
    return run_export(accepted, rounds, paths.export, paths.plots, settings.recipe(), summary)


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(settings: Settings) -> dict[str, Any]:
    """Prefect wrapper of :func:`validate` that stops the flow when the suite fails."""
    from tasks.validate import raise_if_failed

    report = validate(settings)
    raise_if_failed(report)
    return report.counts


@task(name="export", cache_policy=NO_CACHE)
def export_task(settings: Settings) -> dict[str, Any]:
    """Prefect wrapper of :func:`export`."""
    return export(settings)


@task(name="accept", cache_policy=NO_CACHE)
def accept_task(
    settings: Settings, git_rev: str, calls: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    """Prefect wrapper of :func:`accept`."""
    return accept(settings, git_rev, calls)
