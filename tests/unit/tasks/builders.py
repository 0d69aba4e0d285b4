"""Builders for small, valid ``accepted``/``rounds`` tables; tests break one thing on purpose."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from autodata import schemas
from autodata.settings import ROLES, Gate

GATE = Gate(method="fixed")
RECIPE_HASH = "r3c1pe0hash0"
GIT_REV = "0123abc"
MODELS = {
    "challenger_model": "acme/challenger-8b",
    "verifier_model": "acme/challenger-8b",
    "weak_model": "acme/tiny-1b",
    "strong_model": "acme/big-70b",
    "judge_model": "acme/judge-8b",
}
PROMPT_HASHES = {f"{role}_prompt_hash": f"{role[:4]}-pr0mpt" for role in ROLES}


def gate_json(gate: Gate = GATE) -> str:
    """The Gate as the generate stage records it on every row."""
    return json.dumps(gate.model_dump(), sort_keys=True)


def rubric(*weights: int) -> list[dict[str, Any]]:
    return [{"criterion": f"mentions point {i}", "weight": w} for i, w in enumerate(weights, 1)]


def accepted_row(i: int, **over: Any) -> dict[str, Any]:
    """One accepted example that passes every invariant; ``over`` replaces fields."""
    weak, strong = 0.25 + 0.05 * (i % 3), 0.75 + 0.05 * (i % 2)
    row = {
        "candidate_id": f"cand-{i:03d}",
        "source_id": f"src-{i:03d}",
        "domain": "physics" if i % 2 else "biology",
        "round": 2,
        "rounds_used": 1 + i % 3,
        "context": f"Setup number {i}: a ball is dropped from a tower of height {10 + i} m.",
        "question": f"How long does ball {i} take to reach the ground, and why?",
        "reference_answer": f"About {(2 * (10 + i) / 9.81) ** 0.5:.2f} s, from h = g t^2 / 2.",
        "question_type": "explanation",
        "reasoning_skills": ["kinematics", "algebra"],
        "rubric": rubric(3, 2, 1),
        "weak_mean": weak,
        "weak_max": weak + 0.1,
        "weak_min": weak - 0.1,
        "strong_mean": strong,
        "strong_min": strong - 0.1,
        "gap": strong - weak,
        "control_gap": 1.0,
        "null_criteria_met": 0,
        "gate": gate_json(),
        "recipe_hash": RECIPE_HASH,
        **MODELS,
        **PROMPT_HASHES,
        "git_rev": GIT_REV,
    }
    return row | over


def round_row(candidate_id: str, source_id: str, decision: str, **over: Any) -> dict[str, Any]:
    """One round; scores are null where the stage that makes them did not run."""
    row: dict[str, Any] = {
        "candidate_id": candidate_id,
        "source_id": source_id,
        "round": 1,
        "question": f"question of {candidate_id}",
        "weak_mean": None,
        "weak_max": None,
        "weak_min": None,
        "strong_mean": None,
        "strong_min": None,
        "gap": None,
        "control_gap": None,
        "decision": decision,
        "reason": "" if decision == "accepted" else f"{decision} on purpose",
        "feedback": "",
        "recipe_hash": RECIPE_HASH,
        "gate": gate_json(),
    }
    if decision == "too_easy":
        row |= {"weak_mean": 0.9, "weak_max": 1.0, "weak_min": 0.8}
    if decision == "failed_strong":
        row |= {"weak_mean": 0.5, "weak_max": 0.6, "weak_min": 0.4, "strong_mean": 0.55}
        row |= {"strong_min": 0.4, "gap": 0.05, "control_gap": 1.0, "null_criteria_met": 0}
    return row | over


def _accepted_round(row: dict[str, Any]) -> dict[str, Any]:
    scores = (
        "weak_mean",
        "weak_max",
        "weak_min",
        "strong_mean",
        "strong_min",
        "gap",
        "control_gap",
        "null_criteria_met",
    )
    return round_row(row["candidate_id"], row["source_id"], "accepted", round=row["round"]) | {
        k: row[k] for k in (*scores, "gate", "question")
    }


def accepted_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schemas.ACCEPTED)


def rounds_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schemas.ROUNDS)


def make_tables(n: int = 4) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``n`` accepted examples, each after a few rejected rounds, plus one infra error."""
    accepted = [accepted_row(i) for i in range(n)]
    rounds = []
    for row in accepted:
        src = row["source_id"]
        rounds.append(round_row(f"{row['candidate_id']}-r1", src, "too_easy"))
        rounds.append(round_row(f"{row['candidate_id']}-r0", src, "failed_quality"))
        rounds.append(_accepted_round(row))
    rounds.append(round_row("cand-x-strong", "src-x", "failed_strong"))
    rounds.append(round_row("cand-x-infra", "src-x", "infra_error"))
    return accepted_frame(accepted), rounds_frame(rounds)


def empty_tables() -> tuple[pl.DataFrame, pl.DataFrame]:
    """No accepted rows: what the embedded 135M model honestly produces (DESIGN §4)."""
    rounds = [
        round_row("e-1", "src-1", "too_easy"),
        round_row("e-2", "src-1", "judge_unreliable"),
        round_row("e-3", "src-2", "failed_quality"),
        round_row("e-4", "src-2", "failed_strong"),
    ]
    return schemas.empty(schemas.ACCEPTED), rounds_frame(rounds)
