"""``autodata run``: ingest → generate (the round loop) → accept, as one Prefect flow."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from autodata import schemas
from autodata.env import git_revision
from autodata.progress import Reporter
from autodata.settings import Settings
from flows.generate import generate_flow
from tasks.ingest import ingest_to_files
from tasks.outputs import finalize_task


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(settings: Settings, strict: bool) -> tuple[int, int]:
    """Prefect wrapper of the ingest stage: (sources, skipped files)."""
    return ingest_to_files(settings.paths, settings.ingest, strict=strict)


@flow(name="autodata-run", validate_parameters=False)
async def run_flow(settings: Settings, reporter: Reporter, strict: bool = False) -> dict[str, Any]:
    """The whole generation job; returns the metrics of ``metrics/generate.json``."""
    n_sources, n_skipped = ingest_task(settings, strict)
    reporter.line(
        f"ingested {n_sources} sources from {settings.paths.sources} ({n_skipped} files skipped)"
    )
    sources = schemas.check(
        pl.read_parquet(settings.paths.sources_table), schemas.SOURCES, "sources"
    )
    await generate_flow(settings, sources, reporter)
    result = finalize_task(settings, git_revision())
    result["skipped_files"] = n_skipped
    return result
