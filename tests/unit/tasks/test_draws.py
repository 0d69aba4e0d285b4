"""Which rollouts the sequential gate draws next, from hand-built judgments (no server)."""

from __future__ import annotations

from typing import Any

import polars as pl

from autodata import schemas
from autodata.settings import Gate, Rollouts
from tasks.draws import FRESH_FIRST, fresh_plan, sequential_plan

SEQ = Gate(method="sequential")
CAPS = Rollouts(first=2, batch=1, max_weak=4, max_strong=6)


def challenges(*ids: str, passed: bool = True) -> pl.DataFrame:
    rows = [{"candidate_id": cid, "source_id": f"s-{cid}", "round": 1, "reference_answer": "r",
             "qv_passed": passed, "qv_reason": "", "call_status": "ok"} for cid in ids]  # fmt: skip
    return pl.DataFrame(rows, schema={k: schemas.CHALLENGES[k] for k in rows[0]})


def judged(cid: str, role: str, scores: list[float | None]) -> list[dict[str, Any]]:
    return [{"candidate_id": cid, "role": role, "rollout": i, "score": s,
             "call_status": "ok" if s is not None else "infra_error"} for i, s in enumerate(scores)]  # fmt: skip


def graded(*groups: list[dict[str, Any]]) -> pl.DataFrame:
    controls = [row for cid in {r["candidate_id"] for g in groups for r in g}
                for row in judged(cid, "control_ref", [1.0]) + judged(cid, "control_null", [0.0])]  # fmt: skip
    rows = [r for g in groups for r in g] + controls
    return pl.concat([schemas.empty(schemas.JUDGMENTS), pl.DataFrame(rows)], how="diagonal")


def test_the_first_step_draws_the_first_weak_batch_for_every_passed_item() -> None:
    empty = schemas.empty(schemas.JUDGMENTS)
    plan = sequential_plan(challenges("a", "b"), empty, SEQ, CAPS)
    assert plan == {"weak": {"a": (0, 2), "b": (0, 2)}}
    assert sequential_plan(challenges("a", passed=False), empty, SEQ, CAPS) == {}


def test_open_weak_steps_draw_a_batch_up_to_the_cap() -> None:
    open_weak = graded(judged("a", "weak", [0.67, 0.58]))
    assert sequential_plan(challenges("a"), open_weak, SEQ, CAPS) == {"weak": {"a": (2, 3)}}
    at_cap = graded(judged("a", "weak", [0.58, 0.58, 0.67, 0.58]))
    assert sequential_plan(challenges("a"), at_cap, SEQ, CAPS) == {}  # too easy: undecided


def test_a_settled_weak_step_starts_the_strong_one_paired() -> None:
    plan = sequential_plan(challenges("a"), graded(judged("a", "weak", [0.25, 0.25])), SEQ, CAPS)
    assert plan == {"strong": {"a": (0, 2)}}  # two weak rollouts already pair two strong ones
    more = graded(judged("a", "weak", [0.25, 0.25]), judged("a", "strong", [0.67, 0.67]))
    assert sequential_plan(challenges("a"), more, SEQ, CAPS) == {
        "strong": {"a": (2, 3)},
        "weak": {"a": (2, 3)},
    }


def test_decided_failed_and_unreliable_candidates_draw_nothing() -> None:
    easy = graded(judged("a", "weak", [1.0, 1.0]))
    failed = graded(judged("a", "weak", [0.25, None]))
    accepted = graded(judged("a", "weak", [0.25] * 4), judged("a", "strong", [0.75] * 6))
    for frame in (easy, failed, accepted):
        assert sequential_plan(challenges("a"), frame, SEQ, CAPS) == {}


def test_fresh_rollouts_are_numbered_above_every_selection_rollout() -> None:
    rounds = pl.DataFrame({"candidate_id": ["a", "b"], "decision": ["accepted", "too_easy"]})
    assert fresh_plan(rounds, Rollouts(fresh=3)) == {"a": (FRESH_FIRST, FRESH_FIRST + 3)}
    assert fresh_plan(rounds, Rollouts(fresh=0)) == {}
    assert Rollouts.model_fields["max_strong"].metadata[-1].le <= FRESH_FIRST
