"""Which rollouts a round draws next. Pure: the round's challenges and judgments so far in, a plan
out — per role, ``candidate_id -> (first rollout index, index after the last)``.

Fixed gate: ``rollouts.weak`` weak rollouts for every item, then ``rollouts.strong`` strong ones
for the items the weak gate let through (the loop's long-standing two steps).

Sequential gate (``gate.method: sequential``, rubric mode), step by step until nothing is left
to draw: ``rollouts.first`` weak rollouts per item; then, while the weak step is open, another
``rollouts.batch`` up to ``rollouts.max_weak``; once the weak mean is settled inside the band,
``rollouts.first`` strong rollouts and then ``rollouts.batch`` more while the candidate is open,
up to ``rollouts.max_strong``. Strong rollouts are paired: the weak rollouts are topped up to as
many as the strong ones (up to ``max_weak``), because the gap condition needs both means as
sharp. A candidate with a failed call, an unreliable judge or a decision draws nothing more.

Fresh re-scoring: ``rollouts.fresh`` new rollouts per role for each accepted item, numbered from
:data:`FRESH_FIRST` so that their seeds (``seed + rollout``) differ from every rollout the
decision saw (``Rollouts`` caps every count at 64).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from autodata import schemas
from autodata.settings import Gate, Rollouts
from tasks import accept, gate_sequential
from tasks.accept import Rules

Plan = dict[str, dict[str, tuple[int, int]]]  # role -> candidate_id -> (start, stop)
FRESH_FIRST = 64  # the first fresh rollout index: above every capped selection rollout


def _eligible(challenges: pl.DataFrame) -> list[dict[str, Any]]:
    ok = (pl.col("call_status") == "ok") & pl.col("qv_passed")
    return challenges.filter(ok).to_dicts()


def drawn(judgments: pl.DataFrame, role: str) -> dict[str, int]:
    """Rollouts of ``role`` drawn so far per candidate (graded or failed)."""
    rows = judgments.filter(pl.col("role") == role)
    counts = rows.group_by("candidate_id").agg(n=pl.col("rollout").max() + 1)
    return dict(zip(counts["candidate_id"], counts["n"], strict=True))


def sequential_plan(
    challenges: pl.DataFrame, judgments: pl.DataFrame, gate: Gate, rollouts: Rollouts
) -> Plan:
    """The next step's draws of the sequential gate (empty: the round's drawing is done)."""
    stats = accept.summarize(judgments)
    n_weak, n_strong = drawn(judgments, "weak"), drawn(judgments, "strong")
    plan: Plan = {"weak": {}, "strong": {}}
    for c in _eligible(challenges):
        cid = c["candidate_id"]
        w, s = n_weak.get(cid, 0), n_strong.get(cid, 0)
        if not w:
            plan["weak"][cid] = (0, rollouts.first)
            continue
        decision, _ = accept.decide_one(c, stats.get(cid, {}), gate, rollouts=rollouts)
        if decision == gate_sequential.MORE and not s:
            plan["weak"][cid] = (w, min(w + rollouts.batch, rollouts.max_weak))
        elif decision in accept.PENDING_STATES:
            more = rollouts.first if not s else rollouts.batch
            plan["strong"][cid] = (s, min(s + more, rollouts.max_strong))
            pair = min(plan["strong"][cid][1], rollouts.max_weak)
            if pair > w:
                plan["weak"][cid] = (w, pair)
    return {role: draws for role, draws in plan.items() if draws}


def fresh_plan(rounds: pl.DataFrame, rollouts: Rollouts) -> dict[str, tuple[int, int]]:
    """The fresh re-scoring draws (the same for both roles) of a round's accepted candidates."""
    if not rollouts.fresh:
        return {}
    accepted = rounds.filter(pl.col("decision") == "accepted")["candidate_id"].to_list()
    return {cid: (FRESH_FIRST, FRESH_FIRST + rollouts.fresh) for cid in accepted}


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(challenges: pl.DataFrame, judgments: list[pl.DataFrame], rules: Rules) -> Plan:
    """Prefect wrapper of :func:`sequential_plan` over the round's judgments so far."""
    graded = schemas.concat(judgments, schemas.JUDGMENTS)
    return sequential_plan(challenges, graded, rules.gate, rules.rollouts)
