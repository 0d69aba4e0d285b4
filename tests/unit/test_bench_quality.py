"""`autodata bench quality`: its figures from a run's tables, and the command end to end in a tiny
mode on the scripted server (keys and types, no figures asserted)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from autodata.cli import app
from autodata.settings import ROLES
from autodata.testing.scripted_server import ScriptedServer
from benchmarks import quality

pytestmark = pytest.mark.timeout(300)
Scripted = Callable[..., ScriptedServer]
KEYS = {"accepted": int, "candidates": int, "qv_pass_rate": float, "control_pass_share": float,
        "calls_per_accepted": float, "wall_s": float, "models": dict, "decisions": dict,
        "tokens_per_accepted": float, "control_gap_mean": float, "accepted_gap": float}  # fmt: skip


def _rounds(rows: list[tuple[str, float | None, float, float]]) -> pl.DataFrame:
    """Rounds rows (decision, control_gap, weak_mean, strong_mean)."""
    columns = ("decision", "control_gap", "weak_mean", "strong_mean")
    frame = pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.Float64) | {"decision": pl.String}, orient="row")  # fmt: skip
    return frame.with_row_index("candidate_id").with_columns(
        pl.col("candidate_id").cast(pl.String), gap=pl.col("strong_mean") - pl.col("weak_mean")
    )


def test_figures_count_what_each_denominator_says() -> None:
    rounds = _rounds([
        ("accepted", 0.8, 0.2, 0.7), ("accepted", 0.6, 0.4, 0.7), ("judge_unreliable", 0.2, 0.5, 0.5),
        ("too_easy", 0.9, 0.9, 0.9), ("failed_quality", None, 0.0, 0.0), ("infra_error", 0.1, 0.0, 0.0),
    ])  # fmt: skip
    challenges = pl.DataFrame({"qv_passed": [True] * 5 + [False] * 2 + [None],
                               "call_status": ["ok"] * 7 + ["infra_error"]})  # fmt: skip
    per_role = {"judge": {"calls": 12, "retries": 2, "cache_hits": 0, "tokens_in": 90, "tokens_out": 10},
                "weak": {"calls": 4, "retries": 0, "cache_hits": 1, "tokens_in": 40, "tokens_out": 20}}  # fmt: skip
    out = quality.figures(rounds, challenges, per_role, {"judge": "m"})
    assert (out["candidates"], out["accepted"]) == (6, 2)
    assert (out["items_written"], out["qv_passed"], out["qv_pass_rate"]) == (7, 5, round(5 / 7, 4))
    # graded: the four with a control gap that were decided (not infra_error); passed: 3 of them
    controls = [out[k] for k in ("controls_graded", "controls_passed", "control_pass_share")]
    assert controls == [4, 3, 0.75] and out["control_gap_mean"] == 0.625
    accepted = [out[f"accepted_{k}"] for k in ("weak_mean", "strong_mean", "gap")]
    assert accepted == [0.3, 0.7, 0.4]
    assert (out["calls"], out["tokens"]) == (15, 160)  # logical: 12 - 2 retries + 4 + 1 cache hit
    assert (out["calls_per_accepted"], out["tokens_per_accepted"]) == (7.5, 80)
    assert sum(out["decisions"].values()) == 6 and out["models"] == {"judge": "m"}
    json.dumps(out)  # JSON-ready


def test_nothing_accepted_or_graded_gives_nulls_not_errors() -> None:
    out = quality.figures(_rounds([]), pl.DataFrame({"qv_passed": [], "call_status": []},
                          schema={"qv_passed": pl.Boolean, "call_status": pl.String}), {}, {})  # fmt: skip
    assert out["accepted"] == out["candidates"] == 0
    nulls = ("qv_pass_rate", "control_pass_share", "control_gap_mean", "calls_per_accepted", "accepted_gap")  # fmt: skip
    assert all(out[k] is None for k in nulls)


def test_a_small_sample_spans_the_sub_folders(sources_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "picked"
    assert quality.pick_sources(sources_dir, 3, target, follow_links_outside=False) == 3
    assert sorted(p.parent.name for p in target.rglob("*") if p.is_file()) == ["cs_research", "legal", "math"]  # fmt: skip


def _params(root: Path, base_url: str) -> Path:
    """Roles on the scripted server; paths left at their defaults (relative)."""
    role = {"backend": "openai", "base_url": base_url, "model": "scripted"}
    models = {r: role | ({"privileged": True} if r == "strong" else {}) for r in ROLES}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


def _check_keys(data: dict) -> None:
    missing = KEYS.keys() - data.keys()
    assert not missing, missing
    for key, kind in KEYS.items():
        assert data[key] is None or isinstance(data[key], kind | int if kind is float else kind), (key, data[key])  # fmt: skip
    assert set(data["models"]) >= set(ROLES) and "ratio" in data and "machine" in data


def _tiny(params: Path, sources: Path, workdir: Path, out: Path, *extra: str) -> tuple[str, dict]:
    """``bench quality`` in a tiny mode (one round); its output and quality.json."""
    args = ["--params", str(params), "bench", "quality", "--sources", str(sources), *extra,
            "--max-rounds", "1", "--workdir", str(workdir), "--out", str(out), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output, json.loads((out / "quality.json").read_text())


@pytest.mark.usefixtures("prefect_harness")
def test_bench_quality_runs_the_pipeline_in_a_tiny_mode(
    scripted: Scripted, sources_dir: Path, tmp_path: Path
) -> None:
    params = _params(tmp_path, scripted().base_url)
    workdir, out = tmp_path / "run", tmp_path / "out"
    _, data = _tiny(params, sources_dir, workdir, out, "--limit", "2")
    _check_keys(data)
    assert data["sources"] == 2 and data["max_rounds"] == 1 and data["workdir"] == str(workdir)
    assert (workdir / "data" / "processed" / "rounds.parquet").is_file()  # the run's own project

    again = CliRunner().invoke(app, ["--params", str(params), "bench", "quality", "--from-run", str(workdir), "--out", str(tmp_path / "again")])  # fmt: skip
    assert again.exit_code == 0, again.output
    read = json.loads((tmp_path / "again" / "quality.json").read_text())
    _check_keys(read)
    same = ("accepted", "candidates", "decisions", "calls", "tokens", "models")
    assert {k: read[k] for k in same} == {k: data[k] for k in same}


@pytest.mark.usefixtures("prefect_harness")
def test_both_gates_run_side_by_side_on_one_call_cache(
    scripted: Scripted, sources_dir: Path, tmp_path: Path
) -> None:
    params = _params(tmp_path, scripted().base_url)
    workdir, out = tmp_path / "run", tmp_path / "out"
    output, data = _tiny(params, sources_dir, workdir, out, "--gate", "both", "--limit", "1")
    assert set(data["arms"]) == {"fixed", "sequential"} and "ratio" in data
    for gate, arm in data["arms"].items():
        _check_keys(arm)
        assert arm["gate_method"] == gate and arm["workdir"] == str(workdir / gate)
        assert (workdir / gate / "data" / "processed" / "rounds.parquet").is_file()
    fixed, sequential = data["arms"]["fixed"], data["arms"]["sequential"]
    # the second arm reads the first one's challenger call (same request) from the shared cache
    assert (
        fixed["cache_hits"] == 0
        and sequential["cache_hits"] >= sequential["calls_per_role"]["challenger"] >= 1
    )
    assert "fixed  |  sequential" in output


def test_from_run_without_a_finished_run_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--params", str(_params(tmp_path, "http://127.0.0.1:9/v1")),
                                      "bench", "quality", "--from-run", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2
    assert "no finished run is there" in result.output


def test_both_gates_in_verifiable_mode_is_refused_in_one_line(
    sources_dir: Path, tmp_path: Path
) -> None:
    """The sequential gate is rubric-only: two verifiable arms would be the same run twice."""
    params = _params(tmp_path, "http://127.0.0.1:9/v1")
    args = ["--params", str(params), "bench", "quality", "--sources", str(sources_dir),
            "--gate", "both", "--workdir", str(tmp_path / "run")]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"AUTODATA_LOOP__MODE": "verifiable"})
    assert result.exit_code == 2, result.output
    assert "use --gate fixed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
