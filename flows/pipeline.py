"""``autodata run``: ingest → generate (the round loop) → accept → validate → export, as one
Prefect flow. The same stages run one at a time under DVC (``autodata stage <name>``)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from rich.markup import escape

from autodata.env import git_revision
from autodata.progress import Reporter
from autodata.settings import Settings
from flows.generate import generate_flow
from tasks.accept import accept_task
from tasks.export import export_task
from tasks.generate import read_sources
from tasks.ingest import ingest_task, skipped_lines
from tasks.validate import validate_task


@flow(name="autodata-run", validate_parameters=False)
async def run_flow(settings: Settings, reporter: Reporter, strict: bool = False) -> dict[str, Any]:
    """The whole pipeline; returns the metrics of ``metrics/generate.json`` (+ skipped files).

    Raises :class:`ValidationFailed` (nothing exported) when the Great Expectations gate fails.
    """
    n_sources, n_skipped = ingest_task(settings, strict)
    for line in skipped_lines(settings.paths):
        reporter.warn(line)
    where = escape(str(settings.paths.sources))  # a path, not markup
    reporter.line(f"ingested {n_sources} sources from {where} ({n_skipped} files skipped)")
    loop = await generate_flow(settings, read_sources(settings.paths), reporter)
    result = accept_task(settings, git_revision(), loop.calls)
    validate_task(settings)
    export_task(settings)
    result["skipped_files"] = n_skipped
    return result
