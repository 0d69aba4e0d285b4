"""Compute and gate quality per accepted example, fixed 3+3 gate vs the sequential gate, on the
load server's simulation mode (``benchmarks/sim.py``): every candidate has hidden weak and
strong pass probabilities, so whether an accepted item *truly* lies in the gate's zone is known.

Both arms run the real generate stage (Prefect flow, per-call cache, fresh re-scoring of each
accepted item with ``rollouts.fresh`` new rollouts per role) over the same synthetic sources and
the same simulation seed; only ``gate.method`` differs. Per arm:

- ``precision``: accepted items whose hidden (p_weak, p_strong) satisfy the gate's mean
  conditions ÷ accepted items; ``recall``: accepted items truly in the zone ÷ candidates truly in
  the zone that were tried (every candidate that passed quality);
- ``calls_per_accepted`` / ``tokens_per_accepted``: the whole loop's LLM calls (challenger,
  verifier, solvers, judge, controls, fresh re-scoring) ÷ accepted; ``..._selection``: the same
  without the fresh re-scoring (comparable with the figures measured before it existed);
- ``gap_selected`` / ``gap_fresh`` / ``gap_true``: mean gap of the accepted items as the gate saw
  it, as the fresh rollouts measure it, and as the hidden probabilities define it.

The fixed arm also measures the weak-first short-circuit: the same run plus the strong stage on
every candidate the weak step stopped, really sent and counted (``without_weak_first``).
Headline ``ratio`` = calls per accepted, sequential ÷ fixed (< 1: the sequential gate is cheaper).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from autodata import schemas
from autodata.llm.backends import open_clients
from autodata.settings import Gate, Rollouts, Settings
from autodata.testing.roles import RUBRIC
from benchmarks import common, sim
from benchmarks.loadserver import LoadConfig, LoadServerProcess
from tasks.accept import decide
from tasks.judge import judge
from tasks.solve import solve

STOPPED_AT_WEAK = ("too_easy", "suspicious_zero", "judge_unreliable")
METHODS = ("fixed", "sequential")


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


def _truth(rounds: pl.DataFrame, gate: Gate, seed: int) -> pl.DataFrame:
    """``rounds`` plus each candidate's hidden ``true_gap`` and ``in_zone``."""
    probs = [sim.hidden_probs(sim.tag_of(q) or "", seed) for q in rounds["question"].to_list()]
    return rounds.with_columns(
        true_gap=pl.Series([s - w for w, s in probs], dtype=pl.Float64),
        in_zone=pl.Series([sim.truly_in_zone(w, s, gate) for w, s in probs], dtype=pl.Boolean),
    )


def _fresh_cost(rollouts: pl.DataFrame) -> tuple[int, int]:
    """(calls, tokens) of the fresh re-scoring: one solver call and one judge call per criterion
    per fresh rollout (the judge's tokens are not in the rollouts table: calls only)."""
    fresh = rollouts.filter(pl.col("role").is_in(list(schemas.FRESH_ROLES.values())))
    tokens = int(fresh.select(pl.col("tokens_in").sum() + pl.col("tokens_out").sum()).item() or 0)
    return fresh.height * (1 + len(RUBRIC)), tokens


def _per(value: float, n: int) -> float | None:
    return value / n if n else None


def arm_figures(loop: common.RunStats, settings: Settings, seed: int) -> dict[str, Any]:
    """One arm's figures from its loop tables (decided again with the fresh columns, no call)."""
    f = loop.frames
    rounds = decide(f["challenges"], f["judgments"], settings.gate, rollouts=settings.rollouts)
    rounds = _truth(rounds, settings.gate, seed)
    accepted = rounds.filter(pl.col("decision") == "accepted")
    n, tried_zone = accepted.height, int(rounds["in_zone"].sum())
    fresh_calls, fresh_tokens = _fresh_cost(f["rollouts"])
    tokens = loop.tokens_in + loop.tokens_out
    mean = lambda c: accepted[c].mean() if n else None  # noqa: E731
    return {
        "accepted": n, "rounds": rounds.height,
        "decisions": dict(sorted(rounds["decision"].value_counts().rows())),
        "precision": _per(int(accepted["in_zone"].sum()), n),
        "recall": _per(int(accepted["in_zone"].sum()), tried_zone),
        "calls": loop.calls, "calls_per_accepted": _per(loop.calls, n),
        "calls_per_accepted_selection": _per(loop.calls - fresh_calls, n),
        "tokens_per_accepted": _per(tokens, n),
        "tokens_per_accepted_selection": _per(tokens - fresh_tokens, n),
        "gap_selected": mean("gap"), "gap_fresh": mean("fresh_gap"), "gap_true": mean("true_gap"),
        "fresh_abs_error": (accepted["fresh_gap"] - accepted["true_gap"]).abs().mean() if n else None,
        "rollouts_per_candidate": {r: rounds[f"{r}_n"].mean() for r in ("weak", "strong")},
    }  # fmt: skip


def _run_arm(method: str, root: Path, base_url: str, opts: Options, sources: pl.DataFrame
             ) -> tuple[common.RunStats, Settings]:  # fmt: skip
    settings = common.bench_settings(root / method, base_url, opts.concurrency,
                                     gate=Gate(method=method), rollouts=Rollouts())  # fmt: skip
    return common.run_generate(settings, sources), settings


def run(opts: Options, *, harness: bool = True) -> dict[str, Any]:
    """Measure both arms and return the result (``ratio`` = calls per accepted, seq ÷ fixed)."""
    result: dict[str, Any] = {"machine": common.machine(), "options": opts.__dict__, "arms": {}}
    sources = common.synthetic_sources(opts.sources)
    with (
        tempfile.TemporaryDirectory(prefix="autodata-bench-") as tmp,
        LoadServerProcess(LoadConfig(mode="sim", sim_seed=opts.seed)) as srv,
        common.prefect_session(harness),
    ):
        for method in METHODS:
            loop, settings = _run_arm(method, Path(tmp), srv.base_url, opts, sources)
            result["arms"][method] = arm_figures(loop, settings, opts.seed)
            if method == "fixed":
                extra = asyncio.run(_strong_stage(settings, _stopped_items(loop.frames, sources)))
                calls, n = loop.calls + extra["calls"], result["arms"]["fixed"]["accepted"]
                result["arms"]["fixed"]["without_weak_first"] = {
                    "calls": calls, "calls_per_accepted": _per(calls, n)}  # fmt: skip
    cpa = [result["arms"][m]["calls_per_accepted"] for m in ("sequential", "fixed")]
    result["ratio"] = cpa[0] / cpa[1] if all(cpa) else None
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table: one block per arm."""
    keys = ("accepted", "precision", "recall", "calls_per_accepted", "calls_per_accepted_selection",
            "tokens_per_accepted", "gap_selected", "gap_fresh", "gap_true", "fresh_abs_error")  # fmt: skip
    out: list[tuple[str, Any]] = []
    for method, arm in result["arms"].items():
        out += [(f"{method}: {k}", arm[k]) for k in keys]
        out.append((f"{method}: decisions", ", ".join(f"{k} {v}" for k, v in arm["decisions"].items())))  # fmt: skip
    fixed = result["arms"].get("fixed", {}).get("without_weak_first")
    if fixed:
        out.append(("fixed without weak-first: calls per accepted", fixed["calls_per_accepted"]))
    return [*out, ("ratio: calls/accepted sequential ÷ fixed", result["ratio"])]
