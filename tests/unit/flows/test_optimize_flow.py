"""The optimize flow end to end against the in-process scripted server playing the load server's
``optimize`` simulation (every request recorded): better variants are kept, the measurement is
never touched, the analyzer never reads a validation source, a resumed iteration replays from
the cache, budgets stop cleanly, a changed measurement is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from autodata import prompts
from autodata.errors import MeasurementChanged
from autodata.progress import Reporter
from autodata.settings import OPTIMIZER_ROLES, ROLES, Gate, Models, Optimize, Paths, Settings
from autodata.testing.scripted_server import ScriptedServer
from benchmarks import common
from benchmarks.sim_optimize import HARMFUL, OptimizeScript, role_with_optimizer, rules_in
from flows.optimize import optimize_flow
from tasks import optimize_store as store
from tasks.optimize_surface import TARGETS

pytestmark = pytest.mark.timeout(600)
SOURCES = common.synthetic_sources(24)


def settings_on(root: Path, base_url: str, **optimize: Any) -> Settings:
    role = {"backend": "openai", "base_url": base_url, "model": "scripted", "max_concurrency": 16}
    models = Models(**{r: Models().role(r).model_copy(update=role) for r in (*ROLES, *OPTIMIZER_ROLES)})  # fmt: skip
    paths = Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})
    opts = {"iterations": 6, "minibatch": 6, "max_rounds": 1} | optimize
    return Settings(models=models, paths=paths, optimize=Optimize(**opts))


def optimize(settings: Settings) -> dict[str, Any]:
    return asyncio.run(optimize_flow(settings, SOURCES, Reporter(quiet=True)))


@pytest.fixture
def server() -> Any:
    with ScriptedServer(OptimizeScript()) as srv:
        yield srv


def chats(server: ScriptedServer, role: str) -> list[dict[str, Any]]:
    """The chat request bodies ``role`` sent."""
    return [r.body for r in server.requests if r.path.endswith("/chat/completions") and role_with_optimizer(r.body) == role]  # fmt: skip


def system_prompts(server: ScriptedServer, role: str) -> set[str]:
    return {body["messages"][0]["content"] for body in chats(server, role)}


def run_questions(paths: Paths, kind: str) -> set[str]:
    files = store.runs_dir(paths).glob(f"*-{kind}*/loop_rounds.parquet")
    return {q for f in files for q in pl.read_parquet(f)["question"].drop_nulls().to_list()}


def test_better_variants_are_kept_and_the_measurement_is_never_touched(
    prefect_harness: None, tmp_path: Path, server: ScriptedServer
) -> None:
    settings = settings_on(tmp_path, server.base_url)
    result = optimize(settings)
    assert result["iterations"] == 6 and result["stopped"] == "optimize.iterations=6 done"
    assert result["best_score"] >= result["seed_score"]
    variants = store.read_variants(settings.paths)
    for variant in variants.values():
        assert set(variant["surface"]) == set(TARGETS)
        if variant["parent"] is not None and variant["kept"]:
            assert variant["validation_score"] > variants[variant["parent"]]["validation_score"]
        if set(rules_in(variant["surface"]["challenger_system"])) & set(HARMFUL):
            assert not variant["kept"]
    # the solvers and the judge were only ever asked with the packaged prompts
    assert system_prompts(server, "weak") == {prompts.render("solver_system")}
    assert system_prompts(server, "strong") == {prompts.render("solver_system")}
    assert system_prompts(server, "judge") == {prompts.render("judge_rubric_system")}
    for role in ("weak", "judge"):
        sampled = {(body["temperature"], body["max_tokens"]) for body in chats(server, role)}
        assert len(sampled) == 1
    metrics = json.loads(settings.paths.optimize_metrics.read_text())
    assert metrics["validation"] == {v: e["validation_score"] for v, e in variants.items()}


def test_the_analyzer_never_reads_a_validation_source(
    prefect_harness: None, tmp_path: Path, server: ScriptedServer
) -> None:
    settings = settings_on(tmp_path, server.base_url, iterations=3)
    optimize(settings)
    analyzed = [body["messages"][-1]["content"] for body in chats(server, "analyzer")]
    held_out = run_questions(settings.paths, "validation") - run_questions(settings.paths, "train")
    assert len(analyzed) == 3 and held_out
    assert not any(q in text for q in held_out for text in analyzed)
    trained = run_questions(settings.paths, "train")
    assert all(any(q in text for q in trained) for text in analyzed)


def test_a_resumed_iteration_replays_from_the_cache(
    prefect_harness: None, tmp_path: Path, server: ScriptedServer
) -> None:
    settings = settings_on(tmp_path, server.base_url, iterations=3)
    first = optimize(settings)
    sent = server.count()
    state = store.read_state(settings.paths)
    assert state is not None
    # as if killed before iteration 3 was recorded as done: the state is written once at its end
    # (`_end_iteration`), so neither its number nor a child it kept had reached the file yet
    variants = store.read_variants(settings.paths)
    state.iteration = 2
    state.population = {v: s for v, s in state.population.items() if variants[v]["iteration"] < 3}
    store.write_state(settings.paths, state)
    again = optimize(settings)
    assert (
        server.count() - sent <= 2
    )  # at most the preflight probes: every call came from the cache
    assert {k: again[k] for k in ("best_variant", "best_score", "evaluated_variants", "rejected")} == {
        k: first[k] for k in ("best_variant", "best_score", "evaluated_variants", "rejected")}  # fmt: skip
    keys = [e["key"] for e in store.read_jsonl(store.history_path(settings.paths))]
    assert len([k for k in keys if ":stop:" not in k]) == len(
        {k for k in keys if ":stop:" not in k}
    )


def test_a_spent_budget_stops_cleanly_with_the_best_so_far(
    prefect_harness: None, tmp_path: Path, server: ScriptedServer
) -> None:
    settings = settings_on(tmp_path, server.base_url, iterations=50, max_calls=600)
    result = optimize(settings)
    assert "optimize.max_calls=600" in result["stopped"]
    assert result["iterations"] < 50 and result["best_variant"] is not None
    assert result["calls"] >= 600
    assert json.loads(settings.paths.optimize_metrics.read_text())["stopped"] == result["stopped"]


def test_a_changed_measurement_is_refused(
    prefect_harness: None, tmp_path: Path, server: ScriptedServer
) -> None:
    settings = settings_on(tmp_path, server.base_url, iterations=1)
    optimize(settings)
    changed = settings.model_copy(update={"gate": Gate(min_gap=0.3)})
    with pytest.raises(MeasurementChanged, match="another measurement"):
        optimize(changed)
