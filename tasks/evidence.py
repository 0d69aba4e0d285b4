"""What a ``rounds`` row records besides its decision (``schemas.EVIDENCE``): every graded score,
the credible intervals and probabilities at the decision (:mod:`tasks.gate_sequential`), the
majority votes of verifiable mode (:mod:`tasks.verifiable`) and the fresh re-scoring of an
accepted item. Pure: a candidate's summarised judgments (``tasks.accept.summarize``) in, a dict
of columns out.

The fresh re-scoring answers the selection-bias question: an item accepted because its sampled
gap cleared the gate tends to have drawn a lucky sample, so its selection-time gap overstates
the truth; new rollouts with new seeds, drawn after the decision and never used by it, give an
unbiased estimate of the accepted items' gap.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from autodata.settings import Gate
from tasks import gate_sequential, verifiable

DIGITS = 9  # as tasks.accept: 0.85 - 0.65 compares as 0.2


def row_evidence(reference: str, stats: dict[str, Any], gate: Gate, *, mode: str) -> dict[str, Any]:
    """The evidence columns of one candidate's row (``reference``: its reference answer)."""
    weak, strong = stats.get("weak_scores") or [], stats.get("strong_scores") or []
    out = {"mode": mode} | gate_sequential.evidence(weak, strong, gate)
    if mode == "verifiable":
        answers = {role: stats.get(f"{role}_answers") or [] for role in ("weak", "strong")}
        voted = verifiable.votes(answers, reference, gate.answer_tolerance)
        out |= {k: voted[k] for k in ("answer_key", "weak_vote", "strong_vote")}
    else:
        out |= {"answer_key": None, "weak_vote": None, "strong_vote": None}
    null_met = stats.get("control_null_met")
    return (
        out
        | fresh(stats, gate)
        | {"null_criteria_met": None if null_met is None else sum(null_met)}
    )


def fresh(stats: dict[str, Any], gate: Gate) -> dict[str, Any]:
    """The fresh figures of an accepted item (nulls where it was not re-scored)."""
    weak, strong = stats.get("fresh_weak_mean"), stats.get("fresh_strong_mean")
    gap = round(strong - weak, DIGITS) if weak is not None and strong is not None else None
    return {"fresh_weak_mean": weak, "fresh_strong_mean": strong, "fresh_gap": gap,
            "fresh_flag": None if gap is None else gap < gate.fresh_min_gap}  # fmt: skip


def fresh_summary(rounds: pl.DataFrame) -> dict[str, Any]:
    """Accepted rounds re-scored with fresh rollouts: how many, their mean gap at selection and
    fresh, and how many were flagged (``gate.fresh_min_gap``)."""
    scored = rounds.filter((pl.col("decision") == "accepted") & pl.col("fresh_gap").is_not_null())

    def mean(column: str) -> float | None:
        value = scored[column].mean()
        return round(float(value), 4) if isinstance(value, float) else None

    return {"rescored": scored.height, "gap_selected": mean("gap"), "gap_fresh": mean("fresh_gap"),
            "flagged": int(scored["fresh_flag"].sum())}  # fmt: skip
