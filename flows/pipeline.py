"""``autodata run``: ingest → generate (the round loop) → accept → validate → export, as one
Prefect flow. The same stages run one at a time under DVC (``autodata stage <name>``)."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from rich.markup import escape

from autodata import recipes
from autodata.env import git_revision
from autodata.progress import Reporter
from autodata.settings import Settings
from flows.generate import generate_flow
from tasks.ingest import ingest_to_files
from tasks.stages import accept_task, export_task, read_sources, validate_task


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(settings: Settings, strict: bool) -> tuple[int, int]:
    """Prefect wrapper of the ingest stage: (sources, skipped files)."""
    return ingest_to_files(settings.paths, settings.ingest, strict=strict)


@flow(name="autodata-run", validate_parameters=False)
async def run_flow(settings: Settings, reporter: Reporter, strict: bool = False) -> dict[str, Any]:
    """The whole pipeline; returns the metrics of ``metrics/generate.json`` (+ skipped files).

    Raises :class:`ValidationFailed` (nothing exported) when the Great Expectations gate fails.
    """
    n_sources, n_skipped = ingest_task(settings, strict)
    for row in pl.read_parquet(settings.paths.skipped_sources_table).iter_rows(named=True):
        reporter.warn(f"skipped {settings.paths.sources / row['uri']}: {row['reason']}")
    where = escape(str(settings.paths.sources))  # a path, not markup
    reporter.line(f"ingested {n_sources} sources from {where} ({n_skipped} files skipped)")
    loop = await generate_flow(settings, read_sources(settings), reporter)
    recipes.write_snapshot(settings)
    result = accept_task(settings, git_revision(), loop.calls)
    validate_task(settings)
    export_task(settings)
    result["skipped_files"] = n_skipped
    return result
