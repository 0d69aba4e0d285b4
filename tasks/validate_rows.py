"""Per-row facts the validation gate hands to Great Expectations, computed in polars.

Great Expectations checks one column at a time, so every invariant that spans several columns
(a row against the gate it recorded, a rubric against its weight range) becomes one boolean
column here; the suite then expects each of them to be all true. Nulls count as violations.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
from pydantic import ValidationError

from autodata.settings import Gate
from tasks.verifiable import equivalent

GATE_KEYS: tuple[str, ...] = tuple(Gate.model_fields)
MIN_WEIGHT, MAX_WEIGHT = 1, 7
# Threshold comparisons forgive float noise in the row's favour; the strict upper bound on
# strong_mean stays exact so that a row sitting on strong_mean_max still fails.
EPS = 1e-9

# What each accepted row must satisfy. The rubric rules hold in rubric mode (the single-rollout
# ones, weak_max and zeros, under the fixed gate only); verifiable mode is judged on its votes.
ROW_FLAGS: dict[str, str] = {
    "ok_gate_recorded": "gate JSON holds every Gate key with valid values",
    "ok_weak_mean": "rubric: weak_mean <= gate.weak_mean_max",
    "ok_weak_max": "rubric, fixed gate: weak_max <= gate.weak_max_max",
    "ok_strong_mean": "rubric: gate.strong_mean_min <= strong_mean < gate.strong_mean_max",
    "ok_min_gap": "rubric: gap >= gate.min_gap",
    "ok_weak_nonzero": "rubric, fixed gate: weak_min > 0 when gate.forbid_zero_weak",
    "ok_strong_nonzero": "rubric, fixed gate: strong_min > 0 when gate.forbid_zero_strong",
    "ok_control_margin": "rubric: control_gap >= gate.control_margin",
    "ok_null_control": "rubric: the judge said the non-answer meets no criterion",
    "ok_gap_consistent": "gap == strong_mean - weak_mean (within 1e-9)",
    "ok_sequential": "sequential gate: prob_zone >= gate.confidence",
    "ok_votes": "verifiable: the strong majority answer is the answer key, the weak one is not",
}
RUBRIC_FLAGS: dict[str, str] = {
    "ok_rubric_non_empty": "rubric has at least one criterion",
    "ok_rubric_weights": f"every rubric weight is an integer {MIN_WEIGHT}..{MAX_WEIGHT}",
    "ok_rubric_criteria": "every rubric criterion is non-blank text",
}


def parse_gate(raw: str | None) -> dict[str, Any] | None:
    """The recorded Gate as a dict, or None when it is missing, partial or invalid.

    A key missing from the JSON is a violation, never silently filled with today's default.
    """
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or set(GATE_KEYS) - set(data):
            return None
        return Gate.model_validate(data).model_dump()
    except (ValueError, ValidationError):
        return None


def gate_dtype(key: str) -> type[pl.DataType]:
    """The polars type of Gate setting ``key``: Boolean, Float64, or String (``method``)."""
    kind = Gate.model_fields[key].annotation
    return pl.Boolean if kind is bool else pl.Float64 if kind in (float, int) else pl.String


def gate_columns(gates: pl.Series) -> pl.DataFrame:
    """One ``gate_<key>`` column per Gate setting (null where the JSON is unusable)."""
    parsed = [parse_gate(g) for g in gates.to_list()]
    schema = {f"gate_{k}": gate_dtype(k) for k in GATE_KEYS}
    rows = [{f"gate_{k}": (p or {}).get(k) for k in GATE_KEYS} for p in parsed]
    return pl.DataFrame(rows, schema=schema)


def _gate_exprs() -> dict[str, pl.Expr]:
    c, g = pl.col, lambda k: pl.col(f"gate_{k}")
    votes, sequential = c("mode") == "verifiable", (c("mode") != "verifiable") & (g("method") == "sequential")  # fmt: skip
    rubric = {
        "ok_weak_mean": c("weak_mean") <= g("weak_mean_max") + EPS,
        "ok_strong_mean": (c("strong_mean") >= g("strong_mean_min") - EPS)
        & (c("strong_mean") < g("strong_mean_max")),
        "ok_min_gap": c("gap") >= g("min_gap") - EPS,
        "ok_control_margin": c("control_gap") >= g("control_margin") - EPS,
        "ok_null_control": c("null_criteria_met") == 0,
    }
    single = {
        "ok_weak_max": c("weak_max") <= g("weak_max_max") + EPS,
        "ok_weak_nonzero": ~g("forbid_zero_weak") | (c("weak_min") > 0),
        "ok_strong_nonzero": ~g("forbid_zero_strong") | (c("strong_min") > 0),
    }
    return (
        {"ok_gate_recorded": g("min_gap").is_not_null()}
        | {name: votes | e.fill_null(False) for name, e in rubric.items()}
        | {name: votes | sequential | e.fill_null(False) for name, e in single.items()}
        | {"ok_gap_consistent": (c("gap") - (c("strong_mean") - c("weak_mean"))).abs() <= EPS,
           "ok_sequential": ~sequential | (c("prob_zone") >= g("confidence") - EPS).fill_null(False),
           "ok_votes": ~votes | c("_votes_ok")}
    )  # fmt: skip


def _votes_ok(frame: pl.DataFrame, gates: pl.DataFrame) -> pl.Series:
    """Per row: its strong majority answer is its answer key and its weak one is not, within
    the recorded ``gate.answer_tolerance`` (True for rows that are not verifiable)."""
    rows = zip(frame.select("mode", "answer_key", "weak_vote", "strong_vote").iter_rows(),
               gates["gate_answer_tolerance"], strict=True)  # fmt: skip
    return pl.Series("_votes_ok", [
        mode != "verifiable" or (key is not None and tol is not None and equivalent(strong, key, tol)
                                 and not equivalent(weak, key, tol))
        for (mode, key, weak, strong), tol in rows
    ], dtype=pl.Boolean)  # fmt: skip


def with_gate_flags(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` plus one boolean column per :data:`ROW_FLAGS` entry (null -> False)."""
    gates = gate_columns(frame["gate"])
    flags = (
        frame.hstack(gates)
        .with_columns(_votes_ok(frame, gates))
        .select([e.fill_null(False).alias(name) for name, e in _gate_exprs().items()])
    )
    return frame.hstack(flags)


def with_rubric_flags(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` plus one boolean column per :data:`RUBRIC_FLAGS` entry (null -> False)."""
    weight = pl.element().struct.field("weight")
    criterion = pl.element().struct.field("criterion").str.strip_chars().str.len_chars()
    rubric = pl.col("rubric")
    exprs = {
        "ok_rubric_non_empty": rubric.list.len() > 0,
        "ok_rubric_weights": rubric.list.eval(
            weight.is_between(MIN_WEIGHT, MAX_WEIGHT).fill_null(False)
        ).list.all(),
        "ok_rubric_criteria": rubric.list.eval((criterion > 0).fill_null(False)).list.all(),
    }
    return frame.with_columns([e.fill_null(False).alias(n) for n, e in exprs.items()])


def rounds_gate_ok(rounds: pl.DataFrame) -> pl.Series:
    """True for every round that is not accepted or satisfies every flag of its recorded gate."""
    flagged = with_gate_flags(rounds)
    all_ok = pl.all_horizontal([pl.col(n) for n in ROW_FLAGS])
    ok = flagged.select(((pl.col("decision") != "accepted") | all_ok).fill_null(False))
    return ok.to_series().alias("ok_accepted_gate")


def offending_ids(frame: pl.DataFrame, mask: pl.Series, limit: int = 20) -> list[str]:
    """``candidate_id`` (or ``row N`` when it is null) of the first ``limit`` rows in ``mask``."""
    hits = frame.with_row_index("_row").filter(mask).head(limit)
    return [
        cid if cid is not None else f"row {row}"
        for row, cid in zip(hits["_row"], hits["candidate_id"], strict=True)
    ]
