"""Judge drift in the round loop: the anchors are graded before the first round and a judge
that agrees with too few of them stops the run (``loop.anchor_min_agreement``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from conftest import make_settings

from autodata.errors import JudgeDrift
from autodata.progress import Reporter
from autodata.settings import Loop
from autodata.testing.roles import LoopScript, request_role_counts
from autodata.testing.scripted_server import ScriptedServer
from flows.generate import generate_flow
from tasks.ingest import ingest_to_files

pytestmark = pytest.mark.usefixtures("prefect_harness")
Scripted = Callable[..., ScriptedServer]


def test_judge_drift_stops_the_run_before_any_round(scripted: Scripted, sources_dir: Path) -> None:
    """A judge that says yes to (almost) everything agrees with 7 of the 12 anchors: below
    loop.anchor_min_agreement the run stops with one line, having asked no challenger."""
    server = scripted(LoopScript())
    settings = make_settings(sources_dir.parents[1], server.base_url, loop=Loop(anchor_min_agreement=0.8))  # fmt: skip
    ingest_to_files(settings.paths, settings.ingest)
    sources = pl.read_parquet(settings.paths.sources_table)
    with pytest.raises(JudgeDrift, match=r"agreed on 7 of 12 \(58%\), below loop.anchor_min_agreement"):  # fmt: skip
        asyncio.run(generate_flow(settings, sources, Reporter(quiet=True)))
    assert request_role_counts(server.requests) == {"judge": 12}
    assert pl.read_parquet(settings.paths.anchors_table).height == 12
