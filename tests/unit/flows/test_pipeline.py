"""flows.pipeline.run_flow (`autodata run`): the whole pipeline in one Prefect flow, validate and
export included, on the scripted server."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SAMPLE_SOURCES, make_settings

from autodata import recipes
from autodata.errors import ValidationFailed
from autodata.progress import Reporter
from autodata.settings import Validate
from autodata.testing.scripted_server import ScriptedServer
from flows.pipeline import run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")
Scripted = Callable[..., ScriptedServer]


def project(tmp_path: Path) -> Path:
    shutil.copytree(SAMPLE_SOURCES, tmp_path / "data" / "sources")
    return tmp_path


def test_run_flow_ends_with_validation_and_export(scripted: Scripted, tmp_path: Path) -> None:
    settings = make_settings(project(tmp_path), scripted().base_url)
    result = asyncio.run(run_flow(settings, Reporter(quiet=True)))
    paths = settings.paths
    assert result["accepted"] == 6
    assert json.loads(paths.validation_metrics.read_text())["success"] is True
    assert (paths.data_docs / "index.html").exists()
    assert len((paths.export / "sft.jsonl").read_text().splitlines()) == 6
    assert (paths.plots / "scores.csv").exists()
    assert list(recipes.read_registry(paths.recipe_registry)) == [settings.recipe_hash()]


def test_run_flow_stops_before_export_when_validation_fails(scripted: Scripted, tmp_path: Path) -> None:  # fmt: skip
    settings = make_settings(
        project(tmp_path), scripted().base_url, validate=Validate(min_accepted=7)
    )
    with pytest.raises(ValidationFailed, match="validation failed, export stopped"):
        asyncio.run(run_flow(settings, Reporter(quiet=True)))
    assert json.loads(settings.paths.validation_metrics.read_text())["success"] is False
    assert not settings.paths.export.exists()
