"""Overhead and growth: the pipeline's own CPU per LLM request, and how wall time grows with size.

Zero latency: the load server (its own process) answers at once, so what is left is the
pipeline's own cost — HTTP client, JSON, per-call cache (on, fresh per run), prompt rendering,
polars tables, Prefect tasks. One full round (``max_rounds=1``) over ``small`` and ``large``
sources. Prefect's fixed costs are measured apart: the server's startup, a warm-up flow run, and
a flow run over zero sources (the per-flow fixed cost, subtracted for the "net" figure).

Headline ``ratio``: wall(large) / wall(small) — target ≤ 11× for 10× the sources.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodata.settings import Loop, Settings
from benchmarks import bare, common
from benchmarks.loadserver import LoadConfig, LoadServerProcess

BARE_CALLS = 3000


@dataclass(frozen=True)
class Options:
    small: int = 1000
    large: int = 10_000
    concurrency: int = 64
    bare_calls: int = BARE_CALLS

    @staticmethod
    def quick() -> Options:
        return Options(small=30, large=300, bare_calls=1000)


def _settings(root: Path, url: str, concurrency: int) -> Settings:
    loop = Loop(max_rounds=1, max_infra_retries=0)
    return common.bench_settings(root, url, concurrency, loop=loop)


def _measure(srv: LoadServerProcess, root: Path, n: int, k: int) -> dict[str, Any]:
    before = srv.stats()
    run = common.run_generate(
        _settings(root / f"n{n}", srv.base_url, k), common.synthetic_sources(n)
    )
    served = srv.stats()["cpu_s"] - before["cpu_s"]
    candidate_rounds = run.frames["loop_rounds"].height  # one row per candidate per round
    return {"sources": n, "calls": run.calls, "wall_s": run.wall_s, "cpu_s": run.cpu_s,
            "cpu_ms_per_call": run.cpu_ms_per_call, "requests_per_s": run.calls / run.wall_s,
            "candidate_rounds": candidate_rounds,
            "cpu_ms_per_candidate_round": 1000 * run.cpu_s / max(candidate_rounds, 1),
            "server_cpu_ms_per_call": 1000 * served / max(run.calls, 1)}  # fmt: skip


def _bare(srv: LoadServerProcess, calls: int, k: int) -> dict[str, float]:
    bodies = [bare.judge_like_body(i) for i in range(calls)]
    return {kind: bare.replay(srv.base_url, bodies, k, kind).cpu_ms_per_call for kind in ("aiohttp", "httpx")}  # fmt: skip


def run(opts: Options, *, harness: bool = True) -> dict[str, Any]:
    """Measure and return the result (``ratio`` = growth of wall time from small to large)."""
    result: dict[str, Any] = {"machine": common.machine(), "options": opts.__dict__, "cache": "on, fresh directory per run"}  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="autodata-bench-") as tmp,
        LoadServerProcess(LoadConfig(mode="loop")) as srv,
        common.prefect_session(harness) as startup_s,
    ):
        root = Path(tmp)
        warm = common.run_generate(_settings(root / "warm", srv.base_url, opts.concurrency), common.synthetic_sources(3))  # fmt: skip
        empty = common.run_generate(_settings(root / "empty", srv.base_url, opts.concurrency), common.synthetic_sources(0))  # fmt: skip
        result["prefect"] = {"server_startup_s": startup_s, "warmup_flow_wall_s": warm.wall_s,
                             "empty_flow_wall_s": empty.wall_s, "empty_flow_cpu_s": empty.cpu_s}  # fmt: skip
        runs = [_measure(srv, root, n, opts.concurrency) for n in (opts.small, opts.large)]
        result["bare_cpu_ms_per_call"] = _bare(srv, opts.bare_calls, opts.concurrency)
    for r in runs:
        r["net_cpu_ms_per_call"] = 1000 * (r["cpu_s"] - empty.cpu_s) / max(r["calls"], 1)
    result["runs"] = runs
    result["cpu_ms_per_call"] = runs[-1]["cpu_ms_per_call"]
    result["ratio"] = runs[-1]["wall_s"] / runs[0]["wall_s"]
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table."""
    out: list[tuple[str, Any]] = []
    for r in result["runs"]:
        n = r["sources"]
        out += [(f"{n} sources: calls", r["calls"]), (f"{n} sources: wall s", r["wall_s"]),
                (f"{n} sources: pipeline CPU ms/call", r["cpu_ms_per_call"]),
                (f"{n} sources: net of flow fixed cost", r["net_cpu_ms_per_call"]),
                (f"{n} sources: pipeline CPU ms/candidate-round", r["cpu_ms_per_candidate_round"]),
                (f"{n} sources: load-server CPU ms/call", r["server_cpu_ms_per_call"])]  # fmt: skip
    p = result["prefect"]
    out += [("Prefect server startup s", p["server_startup_s"]), ("warm-up flow wall s", p["warmup_flow_wall_s"]),
            ("empty flow wall s / CPU s", f"{p['empty_flow_wall_s']:.2f} / {p['empty_flow_cpu_s']:.2f}")]  # fmt: skip
    out += [(f"bare {k} client CPU ms/call", v) for k, v in result["bare_cpu_ms_per_call"].items()]
    small, large = (r["sources"] for r in result["runs"])
    out.append(
        (
            f"ratio: wall {large} / wall {small} (target ≤ {1.1 * large / small:.0f}×)",
            result["ratio"],
        )
    )
    return out
