"""`autodata run` end to end with the real embedded model on the real managed vLLM CPU server.

Two runs of one round each, as subprocesses (the way a user runs it):
1. every role real, on two short sources: the tables come out with their contracts;
2. challenger and verifier scripted at the HTTP boundary (the 135M challenger never writes an item
   that passes the quality verifier, so this is the only way to reach the solvers here), weak,
   strong and judge real: solving, judging and the judge controls run against the real model,
   and nothing is accepted.
Needs ``bash scripts/setup.sh`` first (skipped otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml

from autodata import schemas
from autodata.testing.roles import LoopScript, request_role_counts
from autodata.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
AUTODATA = ROOT / ".venv" / "bin" / "autodata"
TABLES = {
    "data/processed/sources.parquet": schemas.SOURCES,
    "data/interim/challenges.parquet": schemas.CHALLENGES,
    "data/interim/rollouts.parquet": schemas.ROLLOUTS,
    "data/interim/judgments.parquet": schemas.JUDGMENTS,
    "data/processed/rounds.parquet": schemas.ROUNDS,
    "data/processed/accepted.parquet": schemas.ACCEPTED,
}

if not (ROOT / ".venv-vllm" / ".autodata-ready").exists():
    pytest.skip(
        "the vLLM environment is missing: run bash scripts/setup.sh", allow_module_level=True
    )


def _project(tmp_path: Path) -> Path:
    """A project dir: two short sample sources, one round, the repo's vLLM env and model cache."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["loop"].update(max_rounds=1, max_infra_retries=0)
    params["vllm"]["python"] = str(VLLM_PYTHON)
    params["paths"]["models"] = str(ROOT / ".cache" / "models")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for rel in ("math/water_tank.md", "legal/late_delivery_clause.md"):
        target = tmp_path / "data" / "sources" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((ROOT / "data" / "sources" / rel).read_text())
    return tmp_path


def _run(project: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(AUTODATA), "run", "--quiet"],
        cwd=project,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _tables(project: Path) -> dict[str, pl.DataFrame]:
    return {
        rel: schemas.check(pl.read_parquet(project / rel), schema, rel)
        for rel, schema in TABLES.items()
    }


def test_run_all_roles_real_one_round(tmp_path: Path) -> None:
    project = _project(tmp_path)
    proc = _run(project)
    tables = _tables(project)
    rounds = tables["data/processed/rounds.parquet"]
    assert tables["data/processed/sources.parquet"].height == 2
    assert rounds.height == 2 and set(rounds["round"]) == {1}
    assert set(rounds["decision"]) <= set(schemas.DECISIONS)
    metrics = json.loads((project / "metrics" / "generate.json").read_text())
    assert metrics["candidates"] == 2
    assert metrics["llm"]["per_role"]["challenger"]["calls"] >= 2
    assert (project / "data" / "export" / "README.md").exists()
    assert "accepted" in proc.stdout


def test_real_solvers_and_judge_accept_nothing(tmp_path: Path) -> None:
    project = _project(tmp_path)
    with ScriptedServer(LoopScript()) as scripted:
        env = {}
        for role in ("CHALLENGER", "VERIFIER"):
            env[f"AUTODATA_MODELS__{role}__BACKEND"] = "openai"
            env[f"AUTODATA_MODELS__{role}__BASE_URL"] = scripted.base_url
            env[f"AUTODATA_MODELS__{role}__MODEL"] = "scripted"
        _run(project, env)
        scripted_roles = request_role_counts(scripted.requests)
    assert set(scripted_roles) == {"challenger", "verifier"}
    tables = _tables(project)
    rollouts = tables["data/interim/rollouts.parquet"]
    judgments = tables["data/interim/judgments.parquet"]
    rounds = tables["data/processed/rounds.parquet"]
    weak = rollouts.filter(pl.col("role") == "weak")
    assert weak.height == 2 * 3 and set(weak["call_status"]) == {"ok"}
    assert weak["answer"].str.len_chars().min() > 0  # type: ignore[operator]
    controls = judgments.filter(pl.col("role").str.starts_with("control"))
    assert controls.height == 2 * 2 and set(controls["call_status"]) == {"ok"}
    assert tables["data/processed/accepted.parquet"].height == 0
    # The measured failure of a tiny judge: "yes" to everything. Then it must be caught.
    for row in rounds.iter_rows(named=True):
        mine = judgments.filter(pl.col("candidate_id") == row["candidate_id"])
        all_yes = all(all(met) for met in mine["criterion_met"].to_list())
        if all_yes:
            assert row["decision"] == "judge_unreliable", row
        assert row["decision"] != "accepted"
