"""Table contracts: every stage names its input and output schema here, once.

:func:`check` is called by stage wrappers where data enters and leaves (DESIGN §3).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from polars.datatypes import DataType


def _schema(columns: dict[str, Any]) -> pl.Schema:
    return pl.Schema(columns)


RUBRIC: DataType = pl.List(pl.Struct({"criterion": pl.String, "weight": pl.Int64}))

SOURCES = _schema(
    {
        "source_id": pl.String,  # sha256 of doc_id + section text, first 16 hex chars
        "doc_id": pl.String,  # sha256 of the whole file/record text
        "section": pl.Int64,
        "domain": pl.String,
        "title": pl.String,
        "uri": pl.String,
        "text": pl.String,
        "n_chars": pl.Int64,
        # JSON object: a jsonl/parquet record's other fields (e.g. a known `answer`), a markdown
        # file's front matter (but its title); "{}" when there are none
        "metadata": pl.String,
        "ingested_at": pl.Datetime("us", "UTC"),
    }
)

SKIPPED = pl.Schema({"uri": pl.String, "reason": pl.String})

CHALLENGES = _schema(
    {
        "candidate_id": pl.String,
        "source_id": pl.String,
        "round": pl.Int64,
        "context": pl.String,
        "question": pl.String,
        "reference_answer": pl.String,
        "question_type": pl.String,
        "reasoning_skills": pl.List(pl.String),
        "rubric": RUBRIC,
        "qv_passed": pl.Boolean,
        "qv_reason": pl.String,
        "call_status": pl.String,  # ok | infra_error
        "finish_reason": pl.String,  # the challenger's reply: stop | length | … ('' if no reply)
        "recipe_hash": pl.String,
        # what wrote and checked the item (lineage is read from the rows, never from settings)
        "challenger_model": pl.String,
        "challenger_prompt_hash": pl.String,  # prompts.role_hashes()["challenger"]
        "verifier_model": pl.String,
        "verifier_prompt_hash": pl.String,
    }
)

ROLLOUTS = _schema(
    {
        "candidate_id": pl.String,
        "role": pl.String,  # weak | strong
        "rollout": pl.Int64,
        "answer": pl.String,
        "tokens_in": pl.Int64,
        "tokens_out": pl.Int64,
        "model": pl.String,
        "prompt_hash": pl.String,  # the solver's prompts (prompts.role_hashes()[role])
        "call_status": pl.String,  # ok | truncated | infra_error | invalid_output
        "error": pl.String,
        "finish_reason": pl.String,  # stop | length | … ('' if the call failed)
        "reasoning": pl.String,  # separated thinking, never graded ('' if none)
    }
)

JUDGMENTS = _schema(
    {
        "candidate_id": pl.String,
        "role": pl.String,  # weak | strong | control_ref | control_null
        "rollout": pl.Int64,
        "criterion_met": pl.List(pl.Boolean),
        "criterion_p_yes": pl.List(pl.Float64),  # null entries where the server gave no logprobs
        "score": pl.Float64,  # Σ weight·met / Σ weight
        "p_score": pl.Float64,  # Σ weight·p_yes / Σ weight, null without logprobs
        "judge_model": pl.String,  # "exact-match" in verifiable mode
        "prompt_hash": pl.String,  # the judge's prompts (null in verifiable mode: no prompt)
        "call_status": pl.String,  # ok | truncated (the answer was cut) | infra_error
        "finish_reasons": pl.List(
            pl.String
        ),  # one per judge call (per_answer: one; per_criterion: one a criterion)
        "extracted": pl.String,  # verifiable mode: the final answer the rollout states (null: none)
    }
)

# Roles of ``rollouts`` / ``judgments`` rows: the two solvers, the judge's controls, and the fresh
# re-scoring of accepted items (new seeds, after acceptance; never part of a decision).
FRESH_ROLES = {"weak": "fresh_weak", "strong": "fresh_strong"}

ANCHOR_GRADES = _schema(
    {
        "anchor_id": pl.String,
        "expected": pl.Boolean,  # the verdict a usable judge gives
        "met": pl.Boolean,  # the judge's verdict (null: the call failed)
        "p_yes": pl.Float64,
        "judge_model": pl.String,
        "call_status": pl.String,  # ok | infra_error
        "error": pl.String,
    }
)

DECISIONS = (
    "accepted",
    "too_easy",
    "suspicious_zero",
    "failed_strong",
    "failed_quality",
    "judge_unreliable",
    "infra_error",
)

# The evidence at a decision (tasks/gate_sequential.py, tasks/verifiable.py) and the fresh
# re-scoring of accepted items, on every ``rounds`` row and every ``accepted`` row.
EVIDENCE: dict[str, Any] = {
    "mode": pl.String,  # rubric | verifiable (loop.mode)
    "weak_n": pl.Int64,  # rollouts graded
    "strong_n": pl.Int64,
    "weak_scores": pl.List(pl.Float64),  # every graded rollout's score, in rollout order
    "strong_scores": pl.List(pl.Float64),
    "weak_low": pl.Float64,  # credible interval of the mean at gate.confidence
    "weak_high": pl.Float64,
    "strong_low": pl.Float64,
    "strong_high": pl.Float64,
    "prob_weak": pl.Float64,  # P(weak mean <= gate.weak_mean_max)
    "prob_zone": pl.Float64,  # P(every mean condition of the gate)
    "answer_key": pl.String,  # verifiable: the reference's final answer
    "weak_vote": pl.String,  # verifiable: the majority answer (null: none or a tie)
    "strong_vote": pl.String,
    "fresh_weak_mean": pl.Float64,  # fresh re-scoring of an accepted item (new seeds)
    "fresh_strong_mean": pl.Float64,
    "fresh_gap": pl.Float64,
    "fresh_flag": pl.Boolean,  # fresh_gap < gate.fresh_min_gap
    "null_criteria_met": pl.Int64,  # criteria the judge said the non-answer meets (null: ungraded)
}

ROUNDS = _schema(
    {
        "candidate_id": pl.String,
        "source_id": pl.String,
        "round": pl.Int64,
        "question": pl.String,
        "weak_mean": pl.Float64,
        "weak_max": pl.Float64,
        "weak_min": pl.Float64,
        "strong_mean": pl.Float64,
        "strong_min": pl.Float64,
        "gap": pl.Float64,
        "control_gap": pl.Float64,
        "decision": pl.String,
        "reason": pl.String,
        "feedback": pl.String,
        "recipe_hash": pl.String,
        "gate": pl.String,  # JSON of the Gate settings the decision was made under
    }
    | EVIDENCE
)


def empty(schema: pl.Schema) -> pl.DataFrame:
    """An empty frame with ``schema``."""
    return pl.DataFrame(schema=schema)


def concat(frames: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    """``frames`` one under another; none (a step that drew nothing): an empty frame with
    ``schema`` (``pl.concat`` raises on an empty list)."""
    return pl.concat(frames) if frames else empty(schema)


def check(frame: pl.DataFrame, schema: pl.Schema, name: str) -> pl.DataFrame:
    """Return ``frame`` with exactly ``schema``'s columns, or raise naming the mismatch.

    A mismatch is a programming error between stages, not bad user input.
    """
    missing = [c for c in schema.names() if c not in frame.columns]
    if missing:
        raise TypeError(f"table '{name}' is missing columns {missing}")
    frame = frame.select(schema.names())
    wrong = [
        f"{c}: {frame.schema[c]} != {t}"
        for c, t in schema.items()
        if frame.schema[c] != t and frame.schema[c] != pl.Null
    ]
    if wrong:
        raise TypeError(f"table '{name}' has wrong column types: {wrong}")
    return frame.cast(dict(schema))  # type: ignore[arg-type]


ACCEPTED = _schema(
    {
        "candidate_id": pl.String,
        "source_id": pl.String,
        "domain": pl.String,
        "round": pl.Int64,
        "rounds_used": pl.Int64,
        "context": pl.String,
        "question": pl.String,
        "reference_answer": pl.String,
        "question_type": pl.String,
        "reasoning_skills": pl.List(pl.String),
        "rubric": RUBRIC,
        "weak_mean": pl.Float64,
        "weak_max": pl.Float64,
        "weak_min": pl.Float64,
        "strong_mean": pl.Float64,
        "strong_min": pl.Float64,
        "gap": pl.Float64,
        "control_gap": pl.Float64,
        "gate": pl.String,  # JSON of the Gate settings this row was accepted under
        **EVIDENCE,
        "recipe_hash": pl.String,
        # per role, the model and prompt hash its rows recorded (challenges, rollouts, judgments)
        "challenger_model": pl.String,
        "challenger_prompt_hash": pl.String,
        "verifier_model": pl.String,
        "verifier_prompt_hash": pl.String,
        "weak_model": pl.String,
        "weak_prompt_hash": pl.String,
        "strong_model": pl.String,
        "strong_prompt_hash": pl.String,
        "judge_model": pl.String,
        "judge_prompt_hash": pl.String,
        "git_rev": pl.String,
    }
)
