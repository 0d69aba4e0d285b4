"""The validation suite as data: which Great Expectations expectation checks what, on which table.

Each :class:`Spec` names its expectation class by string so that this module does not import
great_expectations (it takes seconds); :mod:`tasks.validate` turns specs into expectations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from autodata.schemas import DECISIONS
from autodata.settings import Validate
from tasks.validate_rows import (
    ROW_FLAGS,
    RUBRIC_FLAGS,
    offending_ids,
    rounds_gate_ok,
    with_gate_flags,
    with_rubric_flags,
)

TEXT_COLUMNS = ("source_id", "question", "reference_answer", "context")
UNIT_SCORES = ("weak_mean", "weak_max", "weak_min", "strong_mean", "strong_min")
BLANK = r"^\s*$"


@dataclass(frozen=True)
class Spec:
    """One expectation: ``key`` is stable (tests, metrics), ``description`` is for people."""

    key: str
    description: str
    table: str
    expectation: str
    kwargs: dict[str, Any]
    applicable: bool = True
    why_not: str = ""
    offenders: tuple[str, ...] = field(default=())


def _all_true(table: str, key: str, column: str, description: str) -> Spec:
    kwargs = {"column": column, "value_set": [True]}
    return Spec(key, description, table, "ExpectColumnValuesToBeInSet", kwargs)


def _identity(table: str, column: str) -> list[Spec]:
    return [
        Spec(
            f"{table}.{column}.unique",
            f"{table}.{column} is unique",
            table,
            "ExpectColumnValuesToBeUnique",
            {"column": column},
        ),
        Spec(
            f"{table}.{column}.not_null",
            f"{table}.{column} is not null",
            table,
            "ExpectColumnValuesToNotBeNull",
            {"column": column},
        ),
    ]


def _text(column: str) -> list[Spec]:
    not_null = Spec(
        f"accepted.{column}.not_null",
        f"accepted.{column} is not null",
        "accepted",
        "ExpectColumnValuesToNotBeNull",
        {"column": column},
    )
    not_blank = Spec(
        f"accepted.{column}.not_blank",
        f"accepted.{column} is not empty or whitespace",
        "accepted",
        "ExpectColumnValuesToNotMatchRegex",
        {"column": column, "regex": BLANK},
    )
    return [not_null, not_blank]


def _between(table: str, column: str, low: float, high: float) -> Spec:
    return Spec(
        f"{table}.{column}.in_range",
        f"{table}.{column} is within [{low:g}, {high:g}]",
        table,
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": low, "max_value": high},
    )


def accepted_view(accepted: pl.DataFrame, rounds: pl.DataFrame) -> pl.DataFrame:
    """The flat columns of ``accepted`` plus its per-row gate, rubric and lineage flags."""
    decided = rounds.filter(pl.col("decision") == "accepted")["candidate_id"].drop_nulls()
    # Membership is computed here, not as a GE value_set: GE copies a value_set on every
    # configuration access, which costs seconds at 20k ids.
    in_rounds = pl.col("candidate_id").is_in(decided.implode()).fill_null(False)
    flagged = with_rubric_flags(with_gate_flags(accepted)).with_columns(
        in_rounds.alias("ok_accepted_round")
    )
    keep = ["candidate_id", *TEXT_COLUMNS, *UNIT_SCORES, "gap", "control_gap"]
    return flagged.select(keep + list(ROW_FLAGS) + list(RUBRIC_FLAGS) + ["ok_accepted_round"])


def rounds_view(rounds: pl.DataFrame) -> pl.DataFrame:
    """The flat columns of ``rounds`` plus ``ok_accepted_gate`` and a 0/1 ``is_infra_error``."""
    return rounds.select("candidate_id", "decision", *UNIT_SCORES, "gap").with_columns(
        rounds_gate_ok(rounds),
        (pl.col("decision") == "infra_error")
        .fill_null(False)
        .cast(pl.Float64)
        .alias("is_infra_error"),
    )


def accepted_specs(view: pl.DataFrame, cfg: Validate) -> list[Spec]:
    """Row-level and dataset-level expectations over the accepted table."""
    specs = _identity("accepted", "candidate_id")
    for column in TEXT_COLUMNS:
        specs += _text(column)
    specs += [_between("accepted", c, 0.0, 1.0) for c in (*UNIT_SCORES, "gap")]
    for flag, text in ROW_FLAGS.items():
        key = "accepted.gate." + flag.removeprefix("ok_").removeprefix("gate_")
        specs.append(_all_true("accepted", key, flag, text))
    for flag, text in RUBRIC_FLAGS.items():
        key = "accepted.rubric." + flag.removeprefix("ok_rubric_")
        specs.append(_all_true("accepted", key, flag, text))
    specs.append(
        _all_true(
            "accepted",
            "accepted.candidate_id.accepted_round",
            "ok_accepted_round",
            "every accepted candidate_id is a round decided 'accepted'",
        )
    )
    return [*specs, _row_count(cfg), _median_gap(view, cfg)]


def _row_count(cfg: Validate) -> Spec:
    return Spec(
        "accepted.row_count",
        f"at least {cfg.min_accepted} accepted rows (validate.min_accepted)",
        "accepted",
        "ExpectTableRowCountToBeBetween",
        {"min_value": cfg.min_accepted},
    )


def _median_gap(view: pl.DataFrame, cfg: Validate) -> Spec:
    low = view["gap"] < cfg.min_median_gap
    return Spec(
        "accepted.gap.median",
        f"median gap of accepted rows >= {cfg.min_median_gap:g} (validate.min_median_gap)",
        "accepted",
        "ExpectColumnMedianToBeBetween",
        {"column": "gap", "min_value": cfg.min_median_gap},
        applicable=view.height > 0,
        why_not="no accepted rows: a median needs at least one",
        offenders=tuple(offending_ids(view, low.fill_null(True))),
    )


def rounds_specs(view: pl.DataFrame, cfg: Validate) -> list[Spec]:
    """Row-level and dataset-level expectations over the rounds table."""
    known = Spec(
        "rounds.decision.known",
        f"rounds.decision is one of {', '.join(DECISIONS)}",
        "rounds",
        "ExpectColumnValuesToBeInSet",
        {"column": "decision", "value_set": list(DECISIONS)},
    )
    decided = Spec(
        "rounds.decision.not_null",
        "rounds.decision is not null",
        "rounds",
        "ExpectColumnValuesToNotBeNull",
        {"column": "decision"},
    )
    gate = _all_true(
        "rounds",
        "rounds.accepted_gate",
        "ok_accepted_gate",
        "every round decided 'accepted' satisfies its recorded gate",
    )
    scores = [_between("rounds", c, 0.0, 1.0) for c in UNIT_SCORES]
    scores.append(_between("rounds", "gap", -1.0, 1.0))
    return [*_identity("rounds", "candidate_id"), decided, known, gate, *scores, _infra(view, cfg)]


def _infra(view: pl.DataFrame, cfg: Validate) -> Spec:
    share = cfg.max_infra_error_share
    return Spec(
        "rounds.infra_error_share",
        f"share of infra_error rounds <= {share:g} (validate.max_infra_error_share)",
        "rounds",
        "ExpectColumnMeanToBeBetween",
        {"column": "is_infra_error", "min_value": 0.0, "max_value": share},
        applicable=view.height > 0,
        why_not="no rounds: a share needs at least one",
        offenders=tuple(offending_ids(view, view["is_infra_error"] > 0)),
    )
