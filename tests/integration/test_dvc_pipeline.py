"""Real DVC on a fresh git clone of the project, every role played by the scripted server.

One baseline `dvc repro` (session fixture `built`), then: a second repro does nothing; editing
the gate in params.yaml reruns accept with zero LLM requests, and a failing Great Expectations
suite stops the pipeline before export; `dvc exp run -S gate.min_gap=0.3` reruns only
accept/validate/export and shows in `dvc exp show --md`; metrics and plots show; the lineage
commands read the real outputs. Each test puts the project back to the baseline commit.

Last, the scheduled refresh against a real `prefect server start` on loopback: `autodata
schedule` creates a deployment with the cron schedule, and one triggered run reproduces the
pipeline for a newly added source only (the per-call cache answers every call for the others).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pytest
import yaml
from pipeline_repo import background, git, make_repo, pipeline_env, prefect_server, ran_stages, run

from autodata.testing.roles import LoopScript, request_role_counts
from autodata.testing.scripted_server import ScriptedServer
from flows.schedule import DEPLOYMENT

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STAGES = ["ingest", "generate", "accept", "validate", "export"]
N_SOURCES = 6  # data/sources: 6 passages, each accepted in round 1 (conftest's script: gap 0.25)
# Requests per source, params.yaml defaults: rollouts.weak/strong 3 at selection, then
# rollouts.fresh 3 new ones per role on the accepted item; the judge grades every answer in one
# call (loop.judge_protocol per_answer), and the two controls (reference, non-answer) at
# selection only.
SELECTION, FRESH, CONTROLS = 3, 3, 2
SOLVER_CALLS = SELECTION + FRESH
JUDGE_CALLS = 2 * SELECTION + CONTROLS + 2 * FRESH


# --- fixtures: the scripted server, a Prefect server, the baseline project ------------------


@dataclass
class Built:
    """The baseline project: ``dvc repro`` ran once on a fresh clone and the result is committed."""

    repo: Path
    env: dict[str, str]
    server: ScriptedServer
    output: str
    seconds: float
    requests: dict[str, int]


@pytest.fixture(scope="module")
def loop_server() -> Iterator[ScriptedServer]:
    """Plays every role and accepts each source's first candidate with weak 5/12, strong 8/12:
    a gap of 0.25, accepted at min_gap 0.2 and rejected at 0.3 (no zero, controls separate)."""
    script = LoopScript(weak_met=[False, True, False], strong_met=[True, True, False])
    with ScriptedServer(script) as server:
        yield server


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` on loopback (a new database takes ~25 s here)."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, loop_server: ScriptedServer, prefect_api: str) -> Built:  # fmt: skip
    root = tmp_path_factory.mktemp("pipeline")
    repo = make_repo(root / "project")
    env = pipeline_env(loop_server.base_url, prefect_api, root / "prefect-home")
    t0 = time.monotonic()
    proc = run(["dvc", "repro"], repo, env)
    seconds = time.monotonic() - t0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline dataset")
    requests = request_role_counts(list(loop_server.requests))
    return Built(repo, env, loop_server, proc.stdout + proc.stderr, seconds, requests)


def counts(built: Built) -> dict[str, int]:
    return request_role_counts(list(built.server.requests))


def set_param(repo: Path, pattern: str, replacement: str) -> None:
    """Edit params.yaml in place, comments kept (as a user would)."""
    path = repo / "params.yaml"
    text, n = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert n == 1, pattern
    path.write_text(text)


def restore(built: Built) -> None:
    """Back to the baseline commit: params, dvc.lock, metrics, and the DVC-tracked data."""
    git(built.repo, "checkout", "-q", "--", ".")
    run(["dvc", "checkout", "--force"], built.repo, built.env)


def metrics(repo: Path, name: str) -> dict:
    return json.loads((repo / "metrics" / f"{name}.json").read_text())


def test_repro_on_a_fresh_clone_runs_every_stage(built: Built) -> None:
    print(f"baseline dvc repro: {built.seconds:.1f}s, requests {built.requests}")
    assert ran_stages(built.output) == STAGES
    lock = yaml.safe_load((built.repo / "dvc.lock").read_text())
    assert list(lock["stages"]) == STAGES
    assert built.requests["challenger"] == N_SOURCES
    assert built.requests["strong"] == SOLVER_CALLS * N_SOURCES  # selection + fresh re-scoring
    assert built.requests["judge"] == JUDGE_CALLS * N_SOURCES
    assert metrics(built.repo, "generate")["accepted"] == N_SOURCES
    assert metrics(built.repo, "validation")["success"] is True
    sft = (built.repo / "data" / "export" / "sft.jsonl").read_text().splitlines()
    assert len(sft) == N_SOURCES
    for plot in ("scores", "gap", "rounds_per_accepted", "rejections"):
        assert (built.repo / "reports" / "plots" / f"{plot}.csv").exists()
    assert (
        "Data and pipelines are up to date" in run(["dvc", "status"], built.repo, built.env).stdout
    )


def test_second_repro_does_nothing(built: Built) -> None:
    before = counts(built)
    proc = run(["dvc", "repro"], built.repo, built.env)
    assert ran_stages(proc.stdout) == []
    assert "Data and pipelines are up to date" in proc.stdout
    assert counts(built) == before


def test_gate_edit_reruns_accept_without_llm_calls_and_failing_validation_stops_export(
    built: Built,
) -> None:
    before = counts(built)
    set_param(built.repo, r"^(\s+min_gap:) 0\.20", r"\1 0.30")  # above the script's 0.25 gap
    set_param(built.repo, r"^(\s+min_accepted:) 0", r"\1 1")  # so the suite fails on 0 accepted
    try:
        proc = run(["dvc", "repro"], built.repo, built.env, ok=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert ran_stages(proc.stdout) == ["accept", "validate"]  # not ingest/generate, not export
        assert counts(built) == before  # zero new requests: decisions come from stored judgments
        generated = metrics(built.repo, "generate")
        assert (generated["accepted"], generated["decisions"]["failed_strong"]) == (0, N_SOURCES)
        assert pl.read_parquet(built.repo / "data" / "processed" / "accepted.parquet").is_empty()
        registry = (built.repo / "data" / "processed" / "recipes.jsonl").read_text().splitlines()
        gaps = [json.loads(line)["recipe"]["gate"]["min_gap"] for line in registry]
        assert gaps == [0.2, 0.3]  # the generate run's recipe, then the re-tuned one
        assert "validation failed, export stopped" in out
        assert "failed to reproduce 'validate'" in out
        assert metrics(built.repo, "validation")["success"] is False
    finally:
        restore(built)


def test_exp_run_with_a_set_param_shows_in_exp_show(built: Built) -> None:
    before = counts(built)
    try:
        proc = run(["dvc", "exp", "run", "-S", "gate.min_gap=0.3"], built.repo, built.env)
        assert ran_stages(proc.stdout) == ["accept", "validate", "export"]
        assert counts(built) == before
        name = re.search(r"Ran experiment\(s\): (\S+)", proc.stdout)
        assert name, proc.stdout
        shown = run(["dvc", "exp", "show", "--md"], built.repo, built.env).stdout
        lines = [line for line in shown.splitlines() if line.startswith("|")]
        header = [c.strip() for c in lines[0].split("|")]
        rows = {cells[1]: cells for cells in ([c.strip() for c in line.split("|")] for line in lines[2:])}  # fmt: skip
        exp = next(cells for key, cells in rows.items() if name.group(1) in key)
        base = next(cells for key, cells in rows.items() if key == "main")
        pick = {c: header.index(c) for c in ("gate.min_gap", "accepted")}
        assert [exp[i] for i in pick.values()] == ["0.3", "0"]
        assert [base[i] for i in pick.values()] == ["0.2", str(N_SOURCES)]
    finally:
        restore(built)


def test_metrics_and_plots_show(built: Built) -> None:
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], built.repo, built.env).stdout)
    data = shown[""]["data"]  # "" is the workspace
    assert data["metrics/generate.json"]["data"]["accepted"] == N_SOURCES
    assert data["metrics/validation.json"]["data"]["success"] is True
    plots = json.loads(run(["dvc", "plots", "show", "--json"], built.repo, built.env).stdout)
    rendered = {name: v[0]["content"]["data"]["values"] for name, v in plots["data"].items()}
    assert sorted(rendered) == sorted(f"reports/plots/{p}.csv" for p in ("gap", "rejections", "rounds_per_accepted", "scores"))  # fmt: skip
    used = rendered["reports/plots/rounds_per_accepted.csv"]
    assert [(r["rounds_used"], r["accepted"]) for r in used] == [("1", str(N_SOURCES))]


def test_push_to_a_local_remote_and_pull_restores_the_datasets(
    built: Built, tmp_path: Path
) -> None:
    accepted = built.repo / "data" / "processed" / "accepted.parquet"
    before = accepted.read_bytes()
    run(
        ["dvc", "remote", "add", "--local", "-f", "-d", "store", str(tmp_path / "store")],
        built.repo,
        built.env,
    )
    try:
        run(["dvc", "push"], built.repo, built.env)
        shutil.rmtree(built.repo / ".dvc" / "cache")
        accepted.unlink()
        run(["dvc", "pull"], built.repo, built.env)
        assert accepted.read_bytes() == before
        assert (
            "Data and pipelines are up to date"
            in run(["dvc", "status"], built.repo, built.env).stdout
        )
    finally:
        run(["dvc", "remote", "remove", "--local", "store"], built.repo, built.env)


def test_lineage_and_recipes_read_the_real_outputs(built: Built) -> None:
    accepted = pl.read_parquet(built.repo / "data" / "processed" / "accepted.parquet")
    row = accepted.row(0, named=True)
    shown = run(["autodata", "lineage", row["candidate_id"][:8]], built.repo, built.env).stdout
    assert row["source_id"] in shown
    assert row["question"][:40] in shown
    assert f"recipe {row['recipe_hash']}" in shown
    assert "min_gap: 0.2" in shown  # the recipe dict from the registry
    table = run(["autodata", "recipes", "--rev", "HEAD"], built.repo, built.env).stdout
    assert table.count(row["recipe_hash"]) == 2  # the workspace and HEAD
    assert "100%" in table


# --- the scheduled refresh, against a real Prefect server on loopback ---------------------

CRON = "0 3 * * *"
EXPECTED_LOG = "1 new or changed sources: math/two_trains.md"
NEW_SOURCE = """# Two trains

A train leaves Station A at 09:00 at 80 km/h towards Station B, 300 km away. A second train leaves
Station B at 10:00 towards Station A at 100 km/h on a parallel track. When and where do they pass?
"""


async def wait_for_deployment(
    client: PrefectClient, name: str, timeout: float = 90
) -> DeploymentResponse:
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.read_deployment_by_name(name)
        except ObjectNotFound:
            assert time.monotonic() < deadline, f"deployment {name} never appeared"
            await asyncio.sleep(0.5)


async def wait_for_run(client: PrefectClient, run_id: uuid.UUID, timeout: float = 200) -> FlowRun:
    deadline = time.monotonic() + timeout
    while True:
        flow_run = await client.read_flow_run(run_id)
        if flow_run.state and flow_run.state.is_final():
            return flow_run
        assert time.monotonic() < deadline, f"flow run still {flow_run.state} after {timeout}s"
        await asyncio.sleep(1)


async def run_logs(
    client: PrefectClient, run_id: uuid.UUID, expect: str, timeout: float = 15
) -> str:
    """The run's log text, once it contains ``expect`` (logs are shipped in batches)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
    deadline = time.monotonic() + timeout
    while True:
        logs = await client.read_logs(flt, limit=200, offset=0)  # None for either is a 422 here
        text = "\n".join(log.message for log in logs)
        if expect in text or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.5)


def accepted_md5(repo: Path) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(o["md5"] for o in lock["stages"]["accept"]["outs"] if o["path"].endswith("accepted.parquet"))  # fmt: skip


async def test_scheduled_refresh_picks_up_only_the_new_source(built: Built, prefect_api: str, tmp_path: Path) -> None:  # fmt: skip
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    repo = tmp_path / "project"
    shutil.copytree(built.repo, repo, symlinks=True)  # the baseline, with its DVC and LLM caches
    baseline = accepted_md5(repo)
    env = built.env | {"PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_LOGGING_LEVEL": "INFO"}
    serve = ["autodata", "schedule", "--cron", CRON, "--no-push"]
    with background(serve, repo, env, tmp_path / "serve.log"), temporary_settings({PREFECT_API_URL: prefect_api}):  # fmt: skip
        async with get_client() as client:
            deployment = await wait_for_deployment(client, f"refresh/{DEPLOYMENT}")
            assert [getattr(s.schedule, "cron", None) for s in deployment.schedules] == [CRON]
            assert all(s.active for s in deployment.schedules)
            assert deployment.parameters["repo"] == str(repo)

            (repo / "data" / "sources" / "math" / "two_trains.md").write_text(NEW_SOURCE)
            before = request_role_counts(list(built.server.requests))
            flow_run = await client.create_flow_run_from_deployment(deployment.id)
            done = await wait_for_run(client, flow_run.id)
            logs = await run_logs(client, flow_run.id, EXPECTED_LOG)
    serve_log = (tmp_path / "serve.log").read_text()[-3000:]
    assert done.state is not None and done.state.is_completed(), (
        f"{done.state}\n{logs}\n{serve_log}"
    )
    after = request_role_counts(list(built.server.requests))
    new = {role: after.get(role, 0) - before.get(role, 0) for role in after}
    assert new == {
        "challenger": 1,
        "verifier": 1,
        "weak": SOLVER_CALLS,
        "strong": SOLVER_CALLS,
        "judge": JUDGE_CALLS,
    }
    assert EXPECTED_LOG in logs
    sources = pl.read_parquet(repo / "data" / "processed" / "sources.parquet")
    assert "math/two_trains.md" in sources["uri"].to_list() and sources.height == 7
    accepted = pl.read_parquet(repo / "data" / "processed" / "accepted.parquet")
    assert accepted.height == 7
    assert accepted_md5(repo) != baseline  # the new dataset version is recorded in dvc.lock
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo, env).stdout
