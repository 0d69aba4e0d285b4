"""The benchmarks run end to end in a tiny mode and write their result files (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks import common, compute, gate_mc, overhead, parse, saturation, sim
from benchmarks.loadserver import LoadConfig, LoadServerProcess

pytestmark = pytest.mark.timeout(300)


def _written(name: str, result: dict[str, Any], rows: list, tmp_path: Path) -> dict[str, Any]:
    common.show(name, rows)
    return json.loads(common.write_result(name, result, tmp_path).read_text())


def test_saturation_writes_its_ratio(prefect_harness, tmp_path):
    opts = saturation.Options(sources=10, concurrency=8, latency_s=0.01)
    result = saturation.run(opts, harness=False)
    data = _written("saturation", result, saturation.rows(result), tmp_path)
    run = data["load_server"]
    assert run["calls"] == 10 * 32  # challenger, verifier, 3 weak, 15 weak judge, 3 strong, 9 judge
    assert data["ratio"] == run["ratio"] > 0
    assert {"wall_s", "ideal_s", "requests_per_s", "bound_requests_per_s"} <= run.keys()
    assert data["machine"]["nproc"] >= 1 and "loadavg_after" in data


def test_overhead_writes_its_ratio(prefect_harness, tmp_path):
    result = overhead.run(overhead.Options(small=3, large=12, bare_calls=20), harness=False)
    data = _written("overhead", result, overhead.rows(result), tmp_path)
    assert [r["sources"] for r in data["runs"]] == [3, 12]
    assert [r["calls"] for r in data["runs"]] == [3 * 32, 12 * 32]
    assert [r["candidate_rounds"] for r in data["runs"]] == [3, 12]
    assert all(r["cpu_ms_per_candidate_round"] > r["cpu_ms_per_call"] for r in data["runs"])
    assert data["ratio"] == data["runs"][1]["wall_s"] / data["runs"][0]["wall_s"]
    assert data["cpu_ms_per_call"] > 0
    assert set(data["bare_cpu_ms_per_call"]) == {"aiohttp", "httpx"}
    assert {"server_startup_s", "empty_flow_cpu_s"} <= data["prefect"].keys()


def test_compute_writes_both_arms_and_its_ratio(prefect_harness, tmp_path):
    result = compute.run(compute.Options(sources=20), harness=False)
    data = _written("compute", result, compute.rows(result), tmp_path)
    fixed, sequential = data["arms"]["fixed"], data["arms"]["sequential"]
    assert fixed["without_weak_first"]["calls"] > fixed["calls"]  # the weak step stopped some
    keys = {"precision", "recall", "calls_per_accepted", "tokens_per_accepted", "gap_selected",
            "gap_fresh", "gap_true"}  # fmt: skip
    for arm in (fixed, sequential):
        assert keys <= arm.keys() and sum(arm["decisions"].values()) == arm["rounds"]
        if arm["accepted"]:
            assert 0 <= arm["precision"] <= 1 and 0 <= arm["recall"] <= 1
            assert arm["calls_per_accepted"] > arm["calls_per_accepted_selection"]  # fresh calls
    assert sequential["rollouts_per_candidate"]["weak"] != fixed["rollouts_per_candidate"]["weak"]
    assert "ratio" in data


def test_gate_monte_carlo_runs_both_arms():
    result = gate_mc.run(gate_mc.Options(sources=30))
    assert set(result["arms"]) == {"fixed", "sequential"}
    assert result["arms"]["fixed"]["accepted"] > 0 and result["ratio"] is not None


def test_parse_writes_its_ratio(tmp_path):
    result = parse.run(parse.Options(small_kb=8, large_kb=24, repeats=1))
    data = _written("parse", result, parse.rows(result), tmp_path)
    assert [(r["shape"], r["kb"]) for r in data["runs"]] == [
        ("wide", 8), ("wide", 24), ("deep", 8), ("deep", 24)
    ]  # fmt: skip
    assert all(r["chars"] >= r["kb"] * 1024 and r["wall_s"] > 0 for r in data["runs"])
    assert data["ratio"] == data["wide_ratio"] > 0 and data["size_ratio"] == 3


def test_sim_probabilities_are_deterministic_and_ordered():
    p_weak, p_strong = sim.hidden_probs("abcd1234")
    assert (p_weak, p_strong) == sim.hidden_probs("abcd1234")
    assert 0.2 <= p_weak <= p_strong <= 1
    assert sim.tag_of("is the buyer in case 0a1b2c3d entitled") == "0a1b2c3d"


def test_load_server_answers_chat_and_reports_in_flight():
    body = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}
    with LoadServerProcess(LoadConfig(mode="ok", latency_s=0.05)) as srv:
        reply = httpx.post(f"{srv.base_url}/chat/completions", json=body, timeout=10).json()
        assert reply["choices"][0]["message"]["content"] == "yes"
        assert srv.stats()["requests"] == 1
        spans = srv.in_flight(0.01)
    assert sum(spans["mean"]) * 0.01 >= 0.05  # one request held for its latency


def test_vllm_comparison_sends_only_solver_and_judge_calls_to_the_server_it_records(
    prefect_harness, tmp_path
):
    from autodata.testing.roles import role_of
    from benchmarks import saturation_vllm

    with LoadServerProcess(LoadConfig()) as served, LoadServerProcess(LoadConfig()) as scripted:
        settings = saturation_vllm._settings(tmp_path, served.base_url, "scripted", scripted.base_url, 4)  # fmt: skip
        with saturation_vllm.recording(served.base_url) as bodies:
            run = common.run_generate(settings, common.synthetic_sources(2))
        on_scripted = scripted.in_flight()["mean"]
    assert {r: s["calls"] for r, s in run.per_role.items()} == {"challenger": 2, "verifier": 2, "weak": 6, "judge": 48, "strong": 6}  # fmt: skip
    assert sum(on_scripted) > 0  # the challenge stage went to the scripted server
    assert len(bodies) == run.calls - 4 == 2 * 30
    assert {role_of(b) for b in bodies} == {"weak", "strong", "judge"}
