"""Each ``rounds`` row checked against the gate it recorded, as polars expressions.

Written independently of ``tasks/accept.py`` (which decides) so that tests can check its
decisions from the outside: a row's decision must agree with its own figures and its ``gate``.
"""

from __future__ import annotations

import polars as pl

from autodata.settings import Gate
from tasks.validate_rows import gate_dtype

GATE_DTYPE = pl.Struct({k: gate_dtype(k) for k in Gate.model_fields})


def with_gate(rounds: pl.DataFrame) -> pl.DataFrame:
    """``rounds`` plus one ``g_<key>`` column per setting of the row's recorded gate."""
    parsed = pl.col("gate").str.json_decode(GATE_DTYPE)
    return rounds.with_columns(parsed.struct.field(k).alias(f"g_{k}") for k in Gate.model_fields)


def _g(key: str) -> pl.Expr:
    return pl.col(f"g_{key}")


c = pl.col
WEAK_OK = (c("weak_mean") <= _g("weak_mean_max")) & (c("weak_max") <= _g("weak_max_max"))
WEAK_NONZERO = ~_g("forbid_zero_weak") | (c("weak_min") > 0)
STRONG_OK = (
    (c("strong_mean") >= _g("strong_mean_min"))
    & (c("strong_mean") < _g("strong_mean_max"))
    & (~_g("forbid_zero_strong") | (c("strong_min") > 0))
    & (c("gap") >= _g("min_gap"))
)
CONTROL_OK = (c("control_gap") >= _g("control_margin")) & (c("null_criteria_met") == 0)

# What each decision claims about the row's figures (null figures count as "not satisfied").
RULES = {
    "accepted": WEAK_OK & WEAK_NONZERO & STRONG_OK & CONTROL_OK,
    "too_easy": CONTROL_OK & ~WEAK_OK,
    "suspicious_zero": CONTROL_OK & WEAK_OK & ~WEAK_NONZERO,
    "failed_strong": CONTROL_OK & WEAK_OK & WEAK_NONZERO & ~STRONG_OK,
    "judge_unreliable": ~CONTROL_OK.fill_null(False),
}


def consistent() -> pl.Expr:
    """True where the row's decision agrees with its figures and recorded gate (rubric mode)."""
    expr = pl.when(pl.lit(False)).then(pl.lit(False))
    for decision, rule in RULES.items():
        expr = expr.when(c("decision") == decision).then(rule.fill_null(False))
    return expr.otherwise(c("decision").is_in(["failed_quality", "infra_error"])).alias(
        "consistent"
    )


def inconsistent_rows(rounds: pl.DataFrame) -> pl.DataFrame:
    """The rows whose decision contradicts their own figures (empty when all is well)."""
    return with_gate(rounds).filter(~consistent())
