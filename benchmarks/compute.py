"""Compute per accepted example, with and without the weak-first short-circuit, and the gate's
precision, on the load server's simulation mode (``benchmarks/sim.py``).

The loop runs as configured (weak first; the strong solver only for items the weak gate lets
through). The arm *without* the short-circuit is the same run plus the strong stage — strong
rollouts and their judging — on every candidate the weak step stopped (too easy, suspicious
zero, unreliable judge), sent to the same server and counted. Decisions cannot differ between
the arms: a weak-gate rejection stands whatever the strong solver scores, so the accepted set,
the rounds and the feedback are the same, and only the calls differ.

Headline ``ratio`` = LLM calls per accepted example with weak-first ÷ without (< 1 = it saves).
Precision = accepted items whose hidden probabilities truly satisfy the gate ÷ accepted items.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from autodata.llm.backends import open_clients
from autodata.settings import Settings
from benchmarks import common, sim
from benchmarks.loadserver import LoadConfig, LoadServerProcess
from tasks.judge import judge
from tasks.solve import solve

STOPPED_AT_WEAK = ("too_easy", "suspicious_zero", "judge_unreliable")


@dataclass(frozen=True)
class Options:
    sources: int = 1000
    concurrency: int = 64
    seed: int = 0

    @staticmethod
    def quick() -> Options:
        return Options(sources=100)


async def _strong_stage(settings: Settings, items: pl.DataFrame) -> dict[str, int]:
    """Strong rollouts + judging of ``items``; the calls and tokens it took."""
    models, k = settings.models, settings.rollouts.strong
    async with open_clients(settings, ("strong", "judge"), use_cache=False) as clients:
        rollouts = await solve(items, "strong", k, clients["strong"], models.strong)
        await judge(items, rollouts, clients["judge"], models.judge, controls=False)
        stats = [c.stats for c in clients.values()]
    return {"calls": sum(s.calls for s in stats),
            "tokens": sum(s.tokens_in + s.tokens_out for s in stats)}  # fmt: skip


def _stopped_items(frames: dict[str, pl.DataFrame], sources: pl.DataFrame) -> pl.DataFrame:
    stopped = frames["loop_rounds"].filter(pl.col("decision").is_in(STOPPED_AT_WEAK))
    return (
        frames["challenges"]
        .filter(pl.col("candidate_id").is_in(stopped["candidate_id"].implode()))
        .join(sources.select("source_id", "text"), on="source_id")
    )


def precision(rounds: pl.DataFrame, settings: Settings, seed: int) -> float | None:
    """Share of accepted items whose hidden (p_weak, p_strong) truly satisfy the gate."""
    questions = rounds.filter(pl.col("decision") == "accepted")["question"].to_list()
    if not questions:
        return None
    truly = [sim.truly_in_zone(*sim.hidden_probs(sim.tag_of(q) or "", seed), settings.gate) for q in questions]  # fmt: skip
    return sum(truly) / len(truly)


def _per_accepted(value: float, accepted: int) -> float | None:
    return value / accepted if accepted else None


def run(opts: Options, *, harness: bool = True) -> dict[str, Any]:
    """Measure and return the result (``ratio`` = calls per accepted, with ÷ without)."""
    result: dict[str, Any] = {"machine": common.machine(), "options": opts.__dict__}
    sources = common.synthetic_sources(opts.sources)
    with (
        tempfile.TemporaryDirectory(prefix="autodata-bench-") as tmp,
        LoadServerProcess(LoadConfig(mode="sim", sim_seed=opts.seed)) as srv,
        common.prefect_session(harness),
    ):
        settings = common.bench_settings(Path(tmp), srv.base_url, opts.concurrency)
        loop = common.run_generate(settings, sources)
        extra = asyncio.run(_strong_stage(settings, _stopped_items(loop.frames, sources)))
    rounds = loop.frames["loop_rounds"]
    accepted = int((rounds["decision"] == "accepted").sum())
    with_calls, with_tokens = loop.calls, loop.tokens_in + loop.tokens_out
    arms = {"with_weak_first": (with_calls, with_tokens),
            "without": (with_calls + extra["calls"], with_tokens + extra["tokens"])}  # fmt: skip
    for arm, (calls, tokens) in arms.items():
        result[arm] = {"calls": calls, "tokens": tokens,
                       "calls_per_accepted": _per_accepted(calls, accepted),
                       "tokens_per_accepted": _per_accepted(tokens, accepted)}  # fmt: skip
    counts = rounds["decision"].value_counts().sort("decision").rows()
    result |= {"accepted": accepted, "sources": opts.sources, "rounds": rounds.height,
               "decisions": dict(counts), "precision": precision(rounds, settings, opts.seed)}  # fmt: skip
    with_cpa, without_cpa = (result[a]["calls_per_accepted"] for a in arms)
    result["ratio"] = with_cpa / without_cpa if with_cpa and without_cpa else None
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table."""
    w, wo = result["with_weak_first"], result["without"]
    out: list[tuple[str, Any]] = [
        ("sources / rounds run / accepted", f"{result['sources']} / {result['rounds']} / {result['accepted']}"),
        ("decisions", ", ".join(f"{k} {v}" for k, v in result["decisions"].items())),
        ("calls per accepted: weak-first", w["calls_per_accepted"]), ("calls per accepted: without", wo["calls_per_accepted"]),
        ("tokens per accepted: weak-first", w["tokens_per_accepted"]), ("tokens per accepted: without", wo["tokens_per_accepted"]),
        ("gate precision (hidden probabilities in the zone)", result["precision"]),
        ("ratio: calls/accepted weak-first ÷ without", result["ratio"]),
    ]  # fmt: skip
    return out
