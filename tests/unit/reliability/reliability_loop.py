"""Shared by the fast reliability tests: a small project and the loop run in-process
(ingest → ``generate_flow`` → ``finalize``, as tests/unit/flows/test_generate.py does)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from conftest import SAMPLE_SOURCES

from autodata import schemas
from autodata.progress import Reporter
from autodata.settings import Settings
from flows.generate import generate_flow
from tasks.accept import finalize
from tasks.ingest import ingest_to_files

TWO_SOURCES = ("legal/late_delivery_clause.md", "math/water_tank.md")
QUIET = Reporter(quiet=True)


def project(root: Path, files: tuple[str, ...] = TWO_SOURCES) -> Path:
    """``root`` with ``data/sources`` holding ``files`` from the repo's samples."""
    for name in files:
        target = root / "data" / "sources" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_SOURCES / name, target)
    return root


@dataclass
class Outcome:
    rounds: pl.DataFrame
    accepted: pl.DataFrame
    metrics: dict[str, Any]


async def run_loop(settings: Settings, reporter: Reporter = QUIET) -> Outcome:
    """ingest → generate → accept; the final tables and metrics."""
    ingest_to_files(settings.paths, settings.ingest)
    sources = schemas.check(
        pl.read_parquet(settings.paths.sources_table), schemas.SOURCES, "sources"
    )
    await generate_flow(settings, sources, reporter)
    metrics = finalize(settings, "test-rev")
    paths = settings.paths
    return Outcome(
        pl.read_parquet(paths.rounds_table), pl.read_parquet(paths.accepted_table), metrics
    )
