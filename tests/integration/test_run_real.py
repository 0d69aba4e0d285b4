"""`autodata run` end to end with the real embedded models on the real managed vLLM CPU servers.

Two runs of one round each, as subprocesses (the way a user runs it), on the params.yaml
defaults (the embedded models it names) with fewer rollouts to stay cheap:
1. every role real, on one short source: the tables come out with their contracts and every
   model reply records its ``finish_reason``;
2. challenger and verifier scripted at the HTTP boundary, so that solving and judging always
   run whatever the challenger writes: weak, strong and judge real; the judge's controls are
   graded per criterion (``null_criteria_met``) and every decision agrees with its figures.
No figure of the models' quality is asserted (that is ``autodata bench quality``'s job).
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
from gate_rules import inconsistent_rows

from autodata import schemas
from autodata.testing.roles import RUBRIC, LoopScript, request_role_counts
from autodata.testing.scripted_server import ScriptedServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]  # a real round on 2 busy cores

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

SOURCES = ("math/water_tank.md",)  # one source: a real round on CPU takes minutes

if not (ROOT / ".venv-vllm" / ".autodata-ready").exists():
    pytest.skip(
        "the vLLM environment is missing: run bash scripts/setup.sh", allow_module_level=True
    )


def _project(tmp_path: Path) -> Path:
    """A project dir: one short sample source, one round, the repo's vLLM env and model cache;
    the gate is the repo's default (sequential), capped at 4 rollouts a role to keep it short."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["loop"].update(max_rounds=1, max_infra_retries=0)
    params["rollouts"].update(weak=2, strong=2, fresh=0, max_weak=4, max_strong=4)
    params["vllm"]["python"] = str(VLLM_PYTHON)
    params["paths"]["models"] = str(ROOT / ".cache" / "models")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for rel in SOURCES:
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
        timeout=1700,
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
    assert tables["data/processed/sources.parquet"].height == len(SOURCES)
    assert rounds.height == len(SOURCES) and set(rounds["round"]) == {1}
    assert set(rounds["decision"]) <= set(schemas.DECISIONS)
    metrics = json.loads((project / "metrics" / "generate.json").read_text())
    assert metrics["candidates"] == len(SOURCES)
    assert metrics["llm"]["per_role"]["challenger"]["calls"] >= len(SOURCES)
    assert (project / "data" / "export" / "README.md").exists()
    assert "accepted" in proc.stdout
    assert set(tables["data/interim/challenges.parquet"]["finish_reason"]) <= {"stop", "length"}
    for name in ("rollouts", "judgments"):
        frame = tables[f"data/interim/{name}.parquet"]
        column = "finish_reason" if name == "rollouts" else "finish_reasons"
        ok = frame.filter(pl.col("call_status") == "ok")
        values = ok[column].explode() if name == "judgments" else ok[column]
        assert values.null_count() == 0 and set(values) <= {"stop", "length"}, name


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
    drawn = weak.group_by("candidate_id").len()
    assert drawn.height == len(SOURCES) and drawn["len"].is_between(2, 4).all()  # first 2, cap 4
    decided_n = rounds.filter(pl.col("decision") != "infra_error").join(drawn, on="candidate_id")
    assert (decided_n["weak_n"] <= decided_n["len"]).all()  # graded: drawn less cut or failed
    assert set(weak.filter(pl.col("call_status") == "ok")["finish_reason"]) <= {"stop", "length"}
    assert weak.filter(pl.col("call_status") == "ok")["answer"].str.len_chars().min() > 0  # type: ignore[operator]
    controls = judgments.filter(pl.col("role").str.starts_with("control"))
    assert controls.height == len(SOURCES) * 2  # reference and non-answer
    graded = controls.filter(pl.col("call_status") == "ok")
    assert graded["criterion_met"].list.len().to_list() == [len(RUBRIC)] * graded.height
    assert graded["finish_reasons"].to_list() == [["stop"]] * graded.height  # one call an answer
    decided = rounds.filter(pl.col("decision") != "infra_error")
    assert decided["null_criteria_met"].null_count() == 0
    assert inconsistent_rows(rounds).is_empty(), inconsistent_rows(rounds)
