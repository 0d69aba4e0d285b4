"""`autodata stage <name>` one at a time (what dvc.yaml runs), `lineage`, `recipes` and the
`schedule` command's own errors, in-process on the scripted server."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import SAMPLE_SOURCES
from typer.testing import CliRunner

from autodata import schemas
from autodata.cli import app
from autodata.io import write_parquet
from autodata.settings import ROLES, Paths
from autodata.testing.roles import request_role_counts
from autodata.testing.scripted_server import ScriptedServer

Scripted = Callable[..., ScriptedServer]
runner = CliRunner()


def write_params(root: Path, base_url: str, **sections: dict) -> Path:
    """A params.yaml whose roles use the scripted server and whose paths live under ``root``."""
    role = {"backend": "openai", "base_url": base_url, "model": "scripted"}
    models = {r: role | ({"privileged": True} if r == "strong" else {}) for r in ROLES}
    paths = {k: str(root / str(v)) for k, v in Paths().model_dump().items()}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"models": models, "paths": paths, **sections}))
    return path


def empty_outputs(root: Path) -> None:
    """Empty sources, rounds and accepted tables, as a run that accepted nothing leaves them."""
    for name, schema in (("sources", schemas.SOURCES), ("rounds", schemas.ROUNDS), ("accepted", schemas.ACCEPTED)):  # fmt: skip
        write_parquet(schemas.empty(schema), root / "data" / "processed" / f"{name}.parquet")


def invoke(params: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--params", str(params), *args])
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.usefixtures("prefect_harness")
def test_stages_one_at_a_time_then_lineage(scripted: Scripted, tmp_path: Path) -> None:
    server = scripted()
    shutil.copytree(SAMPLE_SOURCES, tmp_path / "data" / "sources")
    params = write_params(tmp_path, server.base_url)
    assert "ingest: 6 sources" in invoke(params, "stage", "ingest")
    assert "generate: 6 candidates in 1 rounds" in invoke(params, "stage", "generate", "--quiet")
    requests = request_role_counts(server.requests)
    assert "accept: 6 of 6 candidates accepted" in invoke(params, "stage", "accept")
    assert "validate: passed" in invoke(params, "stage", "validate")
    assert "export: 6 rows" in invoke(params, "stage", "export")
    assert request_role_counts(server.requests) == requests  # only generate calls models
    assert (tmp_path / "data" / "export" / "rl.jsonl").exists()

    row = pl.read_parquet(tmp_path / "data" / "processed" / "accepted.parquet").row(0, named=True)
    shown = invoke(params, "lineage", row["source_id"][:10])
    assert f"source {row['source_id']}" in shown and "accepted" in shown
    assert f"recipe {row['recipe_hash']}" in shown
    made_by = shown[shown.index("made by") :]  # per role, as the accepted row records it
    for role in ROLES:
        line = next(x for x in made_by.splitlines() if f" {role} " in x)
        assert row[f"{role}_model"] in line and row[f"{role}_prompt_hash"] in line, line
    assert row["recipe_hash"] in invoke(params, "recipes")


def test_stage_validate_fails_with_one_line_and_code_4(scripted: Scripted, tmp_path: Path) -> None:
    params = write_params(tmp_path, scripted().base_url, validate={"min_accepted": 1})
    empty_outputs(tmp_path)
    out = invoke(params, "stage", "validate", code=4)
    last = out.strip().splitlines()[-1]  # (Great Expectations may log an INFO line before it)
    assert (
        last.startswith("error: validation failed, export stopped") and "accepted.row_count" in last
    )
    assert (tmp_path / "metrics" / "validation.json").exists()


def test_stage_export_before_accept_says_what_to_run(scripted: Scripted, tmp_path: Path) -> None:
    params = write_params(tmp_path, scripted().base_url)
    assert "run `autodata stage accept`" in invoke(params, "stage", "export", code=2)


def test_lineage_of_an_unknown_id(scripted: Scripted, tmp_path: Path) -> None:
    params = write_params(tmp_path, scripted().base_url)
    empty_outputs(tmp_path)
    assert "no candidate or source with id 'abc'" in invoke(params, "lineage", "abc", code=2)


def test_schedule_needs_a_prefect_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    params = write_params(tmp_path, "http://127.0.0.1:9/v1")
    out = invoke(params, "schedule", "--cron", "0 3 * * *", code=2)
    assert "PREFECT_API_URL is not set" in out and "prefect server start" in out


def test_schedule_rejects_a_bad_cron(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    params = write_params(tmp_path, "http://127.0.0.1:9/v1")
    assert "not a valid cron expression" in invoke(
        params, "schedule", "--cron", "every day", code=2
    )
