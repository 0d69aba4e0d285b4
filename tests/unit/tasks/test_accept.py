"""The gates of DESIGN §1 (steps 5 and 7, verifiable mode), decided from hand-built judgments.

Pure and fast: no server. Every threshold is probed at its boundary, with the float noise
that real means produce (e.g. 0.85 - 0.65 == 0.19999999999999996).
"""

from __future__ import annotations

import json
import random
from typing import Any

import polars as pl
import pytest
from gate_rules import WEAK_OK, inconsistent_rows, with_gate

from autodata import schemas
from autodata.settings import ROLES, Gate
from tasks import accept
from tasks.accept import PENDING, decide, decide_one, feedback_line, summarize
from tasks.judge import score_verifiable

GATE = Gate(method="fixed")
CID = "cand-1"


def challenge_row(cid: str = CID, **over: Any) -> dict[str, Any]:
    row = {
        "candidate_id": cid,
        "source_id": f"src-{cid}",
        "round": 1,
        "context": "A setup.",
        "question": f"What follows in {cid}?",
        "reference_answer": "42",
        "question_type": "application",
        "reasoning_skills": ["algebra"],
        "rubric": [{"criterion": "states 42", "weight": 1}],
        "qv_passed": True,
        "qv_reason": "",
        "call_status": "ok",
        "recipe_hash": "recipe",
        "challenger_model": "m",
        "challenger_prompt_hash": "p",
    }
    return row | over


def judgment(cid: str, role: str, rollout: int, score: float | None, **over: Any) -> dict[str, Any]:
    ok = score is not None
    row = {
        "candidate_id": cid,
        "role": role,
        "rollout": rollout,
        "criterion_met": [bool(score)] if ok else [],
        "criterion_p_yes": [None] if ok else [],
        "score": score,
        "p_score": None,
        "judge_model": "judge",
        "call_status": "ok" if ok else "infra_error",
    }
    return row | over


def judgment_rows(
    cid: str = CID,
    weak: list[float | None] = (0.4, 0.4, 0.4),  # type: ignore[assignment]
    strong: list[float | None] | None = None,
    ref: float | None = 1.0,
    null: float | None = 0.0,
    ref_p: float | None = None,
    null_p: float | None = None,
) -> list[dict[str, Any]]:
    """Judgments of one candidate; a ``None`` score is a failed call (call_status infra_error)."""
    rows = [judgment(cid, "weak", i, s) for i, s in enumerate(weak)]
    rows += [judgment(cid, "strong", i, s) for i, s in enumerate(strong or [])]
    rows.append(judgment(cid, "control_ref", 0, ref, p_score=ref_p))
    rows.append(judgment(cid, "control_null", 0, null, p_score=null_p))
    return rows


def frames(
    challenges: list[dict[str, Any]], judgments: list[dict[str, Any]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    return (
        pl.DataFrame(challenges, schema=schemas.CHALLENGES),
        pl.DataFrame(judgments, schema=schemas.JUDGMENTS),
    )


def decided(
    gate: Gate = GATE, candidate: dict[str, Any] | None = None, **scores: Any
) -> dict[str, Any]:
    """The one ``rounds`` row ``decide`` makes for a candidate with these scores."""
    rounds = decide(*frames([candidate or challenge_row()], judgment_rows(**scores)), gate)
    assert rounds.height == 1
    return rounds.row(0, named=True)


def decision(**kwargs: Any) -> str:
    return decided(**kwargs)["decision"]


# --- accepted and the weak gate -----------------------------------------------------------


def test_a_clean_candidate_is_accepted_with_its_figures_and_gate() -> None:
    row = decided(weak=[0.25, 0.25, 0.5], strong=[0.75, 0.75, 1.0])
    assert row["decision"] == "accepted"
    assert row["reason"] == "" and row["feedback"] == ""
    assert row["weak_mean"] == pytest.approx(1 / 3)
    assert (row["weak_max"], row["weak_min"]) == (0.5, 0.25)
    assert row["strong_mean"] == pytest.approx(5 / 6) and row["strong_min"] == 0.75
    assert row["gap"] == pytest.approx(0.5)
    assert row["control_gap"] == 1.0
    assert json.loads(row["gate"]) == GATE.model_dump()


@pytest.mark.parametrize(
    ("weak", "expected"),
    [
        ([0.65, 0.65, 0.65], PENDING),  # mean exactly at weak_mean_max passes
        ([0.55, 0.65, 0.75], PENDING),  # sums to 1.9500000000000002: still exactly 0.65
        ([0.65, 0.65, 0.66], "too_easy"),  # mean 0.6533 just above
        ([0.75, 0.55, 0.5], PENDING),  # max exactly at weak_max_max passes
        ([0.76, 0.55, 0.5], "too_easy"),  # max just above (mean 0.603 is fine)
        ([1.0, 0.3, 0.3], "too_easy"),  # a single perfect weak answer fails by max
    ],
)
def test_weak_gate_boundaries(weak: list[float], expected: str) -> None:
    assert decision(weak=weak) == expected


def test_too_easy_reason_names_the_failing_figure() -> None:
    by_mean = decided(weak=[0.7, 0.7, 0.7])
    by_max = decided(weak=[0.8, 0.5, 0.5])
    assert by_mean["decision"] == by_max["decision"] == "too_easy"
    assert by_mean["reason"].startswith("weak_mean 0.700 > 0.65")
    assert by_max["reason"].startswith("weak_max 0.800 > 0.75")
    assert by_mean["strong_mean"] is None and by_mean["gap"] is None


def test_strong_is_pending_only_after_the_weak_gate_passes() -> None:
    row = decided(weak=[0.4, 0.4, 0.4])
    assert row["decision"] == PENDING
    assert row["strong_mean"] is None and row["gap"] is None and row["feedback"] == ""


@pytest.mark.parametrize(
    ("weak", "forbid", "expected"),
    [
        ([0.0, 0.5, 0.5], True, "suspicious_zero"),
        ([0.0, 0.0, 0.0], True, "suspicious_zero"),
        ([0.0, 0.5, 0.5], False, PENDING),
        ([0.0, 1.0, 1.0], True, "too_easy"),  # the mean fails first
    ],
)
def test_a_zero_weak_rollout(weak: list[float], forbid: bool, expected: str) -> None:
    assert decision(weak=weak, gate=Gate(method="fixed", forbid_zero_weak=forbid)) == expected


# --- the strong gate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weak", "strong", "expected"),
    [
        ([0.4] * 3, [0.6] * 3, "accepted"),  # strong_mean exactly 0.60, gap exactly 0.20
        ([0.3] * 3, [0.59] * 3, "failed_strong"),  # just below the band
        ([0.3] * 3, [0.95] * 3, "failed_strong"),  # band is half-open: 0.95 fails
        ([0.3] * 3, [0.95, 0.95, 0.96], "failed_strong"),  # mean 0.9533
        ([0.3] * 3, [0.9, 0.95, 0.99], "accepted"),  # mean 0.9467: inside
        ([0.65] * 3, [0.85] * 3, "accepted"),  # gap 0.85-0.65 = 0.19999999999999996 counts as 0.2
        ([0.55, 0.65, 0.75], [0.85] * 3, "accepted"),  # same gap from noisy means
        ([0.65] * 3, [0.84] * 3, "failed_strong"),  # gap 0.19
        ([0.5] * 3, [0.69] * 3, "failed_strong"),  # in band, gap 0.19
        ([0.3] * 3, [0.0, 1.0, 1.0], "failed_strong"),  # a zero strong rollout
        ([0.3] * 3, [0.0, 0.0, 0.0], "failed_strong"),
    ],
)
def test_strong_gate_boundaries(weak: list[float], strong: list[float], expected: str) -> None:
    assert decision(weak=weak, strong=strong) == expected


def test_a_zero_strong_rollout_is_allowed_when_the_gate_says_so() -> None:
    gate = Gate(method="fixed", forbid_zero_strong=False)
    assert decision(weak=[0.2] * 3, strong=[0.0, 1.0, 1.0], gate=gate) == "accepted"


def test_failed_strong_reasons_and_feedback_carry_the_figures() -> None:
    low = decided(weak=[0.3] * 3, strong=[0.5] * 3)
    assert low["reason"] == "strong_mean 0.500 outside [0.6, 0.95)"
    assert low["feedback"].startswith("failed on strong (weak 0.30, strong 0.50, gap 0.20)")
    narrow = decided(weak=[0.6] * 3, strong=[0.75] * 3)
    assert narrow["reason"] == "gap 0.150 < 0.2"
    assert narrow["gap"] == pytest.approx(0.15)
    zero = decided(weak=[0.3] * 3, strong=[0.0, 1.0, 1.0])
    assert zero["reason"] == "a strong rollout scored 0"


def test_gate_thresholds_come_from_the_gate_not_constants() -> None:
    strict = Gate(method="fixed", weak_mean_max=0.3, weak_max_max=0.5, min_gap=0.5)
    assert decision(weak=[0.4] * 3, gate=strict) == "too_easy"
    assert decision(weak=[0.3] * 3, strong=[0.79] * 3, gate=strict) == "failed_strong"
    assert decision(weak=[0.3] * 3, strong=[0.8] * 3, gate=strict) == "accepted"


# --- quality, judge controls --------------------------------------------------------------


def test_a_rejected_item_is_failed_quality_with_the_verifiers_reason() -> None:
    candidate = challenge_row(qv_passed=False, qv_reason="context leak: verbatim")
    row = decided(candidate=candidate, weak=[], ref=None, null=None)
    assert (row["decision"], row["reason"]) == ("failed_quality", "context leak: verbatim")
    assert row["feedback"] == f'failed quality (context leak: verbatim): "What follows in {CID}?"'


@pytest.mark.parametrize(
    ("ref", "null", "expected"),
    [
        (1.0, 1.0, "judge_unreliable"),  # yes to everything
        (0.0, 0.0, "judge_unreliable"),  # no to everything
        (0.9, 0.41, "judge_unreliable"),  # gap 0.49
        (0.5, 0.0, PENDING),  # gap exactly the margin
        (0.0, 1.0, "judge_unreliable"),  # inverted
    ],
)
def test_control_gap_against_the_margin(ref: float, null: float, expected: str) -> None:
    assert decision(weak=[0.4] * 3, ref=ref, null=null) == expected


def test_a_criterion_the_non_answer_meets_makes_the_judge_unreliable_whatever_the_total() -> None:
    """Per-criterion controls: the total gap (1 - 3/12 = 0.75) clears the margin, but criterion 1
    is met by "I don't know.", so it measures nothing."""
    rows = judgment_rows(weak=[0.4] * 3)
    rows[-1] |= {"criterion_met": [True, False, False], "score": 0.25}  # the non-answer's row
    row = decide(*frames([challenge_row()], rows), GATE).row(0, named=True)
    assert (row["decision"], row["control_gap"], row["null_criteria_met"]) == (
        "judge_unreliable",
        0.75,
        1,
    )
    assert "non-answer meets criterion 1" in row["reason"]
    passing = decided(weak=[0.4] * 3)
    assert (passing["decision"], passing["null_criteria_met"]) == (PENDING, 0)


def test_logprob_gap_can_make_a_judge_unreliable_on_its_own() -> None:
    close = decided(weak=[0.4] * 3, ref_p=0.55, null_p=0.5)
    assert close["decision"] == "judge_unreliable"
    assert close["control_gap"] == pytest.approx(0.05)
    assert "0.05" in close["reason"]
    apart = decided(weak=[0.4] * 3, strong=[0.8] * 3, ref_p=0.9, null_p=0.1)
    assert apart["decision"] == "accepted" and apart["control_gap"] == pytest.approx(0.8)
    # one side without logprobs: only the hard-verdict gap counts
    assert decision(weak=[0.4] * 3, strong=[0.8] * 3, ref_p=0.55, null_p=None) == "accepted"


def test_missing_controls_make_the_judge_unreliable() -> None:
    judgments = [j for j in judgment_rows() if not j["role"].startswith("control")]
    row = decide(*frames([challenge_row()], judgments), GATE).row(0, named=True)
    assert row["decision"] == "judge_unreliable" and row["control_gap"] is None


@pytest.mark.parametrize("weak", [[1.0] * 3, [0.9, 0.8, 1.0], [0.0, 0.2, 0.2]])
def test_a_yes_to_everything_judge_is_never_too_easy_nor_accepted(weak: list[float]) -> None:
    row = decided(weak=weak, strong=[0.8] * 3, ref=1.0, null=1.0)
    assert row["decision"] == "judge_unreliable"
    assert row["feedback"].startswith("could not be graded reliably")


# --- infrastructure -----------------------------------------------------------------------


def test_a_failed_challenge_call_is_infra_error_not_quality() -> None:
    candidate = challenge_row(
        qv_passed=False, qv_reason="challenger call failed: HTTP 500", call_status="infra_error"
    )
    row = decided(candidate=candidate, weak=[], ref=None, null=None)
    assert row["decision"] == "infra_error"
    assert row["reason"] == "challenger call failed: HTTP 500"
    assert row["feedback"] == ""  # the challenger is not told about our outage


@pytest.mark.parametrize(
    "scores",
    [
        {"weak": [1.0, 1.0, None]},  # a weak rollout failed (the others look too easy)
        {"weak": [None, None, None]},
        {"weak": []},  # no weak judgments at all
        {"weak": [0.4] * 3, "ref": None},  # a control failed
        {"weak": [0.4] * 3, "null": None},
        {"weak": [1.0, None, 1.0], "ref": 1.0, "null": 1.0},  # beats judge_unreliable
        {"weak": [0.4] * 3, "strong": [0.8, None, 0.8]},  # a strong rollout failed
        {"weak": [0.4] * 3, "strong": [0.0, None, 0.0]},  # ... even if another scored 0
    ],
)
def test_any_failed_call_is_infra_error(scores: dict[str, Any]) -> None:
    row = decided(**scores)
    assert row["decision"] == "infra_error"
    assert "retried in a later round" in row["reason"]
    assert row["feedback"] == ""


def test_decide_one_order_infra_then_quality() -> None:
    stats = summarize(pl.DataFrame(judgment_rows(weak=[1.0] * 3), schema=schemas.JUDGMENTS))[CID]
    infra = challenge_row(call_status="infra_error", qv_passed=False, qv_reason="down")
    quality = challenge_row(qv_passed=False, qv_reason="vague")
    assert decide_one(infra, stats, GATE) == ("infra_error", "down")
    assert decide_one(quality, stats, GATE) == ("failed_quality", "vague")
    assert decide_one(challenge_row(), stats, GATE)[0] == "too_easy"


# --- summarize, feedback, frames ----------------------------------------------------------


def test_summarize_ignores_failed_rollouts_in_figures_but_flags_them() -> None:
    judgments = pl.DataFrame(
        judgment_rows(weak=[0.25, None, 0.75], strong=[0.5, 1.0], ref_p=0.9, null_p=0.2),
        schema=schemas.JUDGMENTS,
    )
    stats = summarize(judgments)[CID]
    assert stats["weak_infra"] is True and stats["strong_infra"] is False
    assert stats["weak_mean"] == 0.5 and (stats["weak_min"], stats["weak_max"]) == (0.25, 0.75)
    assert stats["strong_mean"] == 0.75
    assert stats["control_ref_p"] == 0.9 and stats["weak_p"] is None


def test_feedback_lines_by_category() -> None:
    s = {"weak_mean": 0.8333, "strong_mean": 0.55}
    assert feedback_line("too_easy", "Q?", s, "") == 'too easy (weak solver mean 0.83): "Q?"'
    assert feedback_line("failed_strong", "Q?", {**s, "weak_mean": 0.4}, "") == (
        'failed on strong (weak 0.40, strong 0.55, gap 0.15): "Q?"'
    )
    assert feedback_line("failed_quality", None, {}, "bad rubric") == (
        "failed quality (bad rubric): (no valid item)"
    )
    assert "scored 0" in feedback_line("suspicious_zero", "Q?", s, "")
    assert feedback_line("accepted", "Q?", s, "") == ""
    assert feedback_line("infra_error", "Q?", s, "") == ""


def test_decide_keeps_one_row_per_candidate_in_input_order() -> None:
    ids = ["c", "a", "b"]
    challenges = [challenge_row(cid) for cid in ids]
    judgments = [j for cid in ids for j in judgment_rows(cid, strong=[0.8] * 3)]
    rounds = decide(*frames(challenges, judgments), GATE)
    assert rounds.schema == schemas.ROUNDS
    assert rounds["candidate_id"].to_list() == ids
    assert set(rounds["decision"]) == {"accepted"}


def test_decide_on_no_candidates_is_an_empty_rounds_table() -> None:
    rounds = decide(schemas.empty(schemas.CHALLENGES), schemas.empty(schemas.JUDGMENTS), GATE)
    assert rounds.is_empty() and rounds.schema == schemas.ROUNDS


def test_decision_counts_lists_every_decision() -> None:
    rounds = decide(*frames([challenge_row()], judgment_rows(weak=[1.0] * 3)), GATE)
    counts = accept.decision_counts(rounds)
    assert list(counts) == list(schemas.DECISIONS)
    assert counts["too_easy"] == 1 and sum(counts.values()) == 1


# --- verifiable mode (exact-match grading: tests/unit/tasks/test_judge.py) ---------------


def _verifiable_round(weak: list[str], strong: list[str], reference: str = "42") -> dict[str, Any]:
    items = pl.DataFrame([challenge_row(reference_answer=reference)], schema=schemas.CHALLENGES)
    rollouts = pl.DataFrame(
        [
            {
                "candidate_id": CID,
                "role": role,
                "rollout": i,
                "answer": a if a is None or "\\boxed" in a else f"Work.\nFinal answer: {a}",
                "tokens_in": 1,
                "tokens_out": 1,
                "model": "m",
                "call_status": "ok" if a is not None else "infra_error",
                "error": "",
            }
            for role, answers in (("weak", weak), ("strong", strong))
            for i, a in enumerate(answers)
        ],
        schema=schemas.ROLLOUTS,
    )
    judgments = score_verifiable(items, rollouts, 1e-4)
    return decide(items, judgments, GATE, verifiable=True).row(0, named=True)


@pytest.mark.parametrize(
    ("weak", "strong", "expected"),
    [
        (["41", "0", r"\boxed{42}"], ["42", "42.0", "7"], "accepted"),  # no weak majority: a tie
        (["41", "0", "41"], ["42", "42", "42"], "accepted"),  # zero weak is normal here
        (["42", "42.00", "7"], ["42"] * 3, "too_easy"),
        (["1", "2", "3"], ["42", "1", "2"], "failed_strong"),  # a tie is no majority
        (["1", "2", "3"], ["41", "41", "42"], "failed_strong"),
        (["1", "2", "3"], [], PENDING),
        (["1", None, "3"], ["42"] * 3, "infra_error"),
        (["1", "2", "3"], ["42", None, "42"], "infra_error"),
    ],
)
def test_verifiable_mode_majority_votes(weak: list[str], strong: list[str], expected: str) -> None:
    assert _verifiable_round(weak, strong)["decision"] == expected


def test_verifiable_rows_record_the_key_and_votes() -> None:
    row = _verifiable_round(
        ["1/2", "0.5", "3"], ["3/4", "75%", "0.75"], reference="Final answer: 0.75"
    )
    assert (row["answer_key"], row["weak_vote"], row["strong_vote"]) == ("0.75", "1/2", "3/4")
    assert row["decision"] == "accepted" and row["mode"] == "verifiable"
    assert "is right" in _verifiable_round(["3/4"] * 3, ["3/4"] * 3, "0.75")["reason"]


def test_verifiable_mode_needs_no_judge_controls() -> None:
    row = _verifiable_round(["1", "2", "3"], ["42"] * 3)
    assert row["decision"] == "accepted" and row["control_gap"] is None


# --- property: decisions agree with the gate each row records -----------------------------

SCORES = [0.0, 0.25, 1 / 3, 5 / 12, 7 / 12, 2 / 3, 0.75, 1.0]  # what weights 3, 5, 4 give


def _random_gate(rng: random.Random) -> Gate:
    weak_mean_max = rng.choice([0.5, 0.6, 0.65])
    strong_min = rng.choice([0.5, 0.6, 0.7])
    return Gate(
        method="fixed",
        weak_mean_max=weak_mean_max,
        weak_max_max=rng.choice([weak_mean_max, 0.75, 0.8]),
        strong_mean_min=strong_min,
        strong_mean_max=rng.choice([0.9, 0.95, 1.0]),
        min_gap=rng.choice([0.1, 0.2, 0.3]),
        forbid_zero_weak=rng.random() < 0.7,
        forbid_zero_strong=rng.random() < 0.7,
        control_margin=rng.choice([0.3, 0.5]),
    )


def _scores(rng: random.Random) -> list[float | None]:
    """1-4 rollouts: often identical (means land exactly on thresholds), on a 0.05 grid (float
    noise in gaps), realistic twelfths, or anything; now and then a failed call."""
    k = rng.randint(1, 4)
    pick = rng.random()
    if pick < 0.4:
        draw = lambda: rng.randint(0, 20) * 0.05  # noqa: E731
    elif pick < 0.8:
        draw = lambda: rng.choice(SCORES)  # noqa: E731
    else:
        draw = lambda: round(rng.random(), 3)  # noqa: E731
    scores: list[float | None] = [draw()] * k if rng.random() < 0.4 else [draw() for _ in range(k)]
    if rng.random() < 0.03:
        scores[rng.randrange(k)] = None
    return scores


def test_random_judgments_never_contradict_the_recorded_gate() -> None:
    rng = random.Random(20261107)
    rounds = []
    for i in range(600):
        cid, gate = f"c{i}", _random_gate(rng)
        weak, strong = _scores(rng), _scores(rng)
        if rng.random() < 0.25:  # on the edges: weak at its limit, strong exactly min_gap above
            w = rng.choice([gate.weak_mean_max, 0.3, 0.4, 0.45, 0.55])
            weak = [w] * rng.randint(1, 4)
            strong = [round(w + gate.min_gap, 2)] * rng.randint(1, 4)
        judgments = judgment_rows(
            cid,
            weak=weak,
            strong=strong,
            ref=rng.choice([1.0, 1.0, 0.75, 0.5]),
            null=rng.choice([0.0, 0.0, 0.25, 0.5, 1.0]),
        )
        if rng.random() < 0.03:  # the controls were never graded
            judgments = [j for j in judgments if not j["role"].startswith("control")]
        rounds.append(decide(*frames([challenge_row(cid)], judgments), gate))
    table = pl.concat(rounds)
    assert inconsistent_rows(table).is_empty(), inconsistent_rows(table)
    counts = accept.decision_counts(table)
    # the sample reaches every gate outcome, so the check above is not vacuous
    for kind in (
        "accepted",
        "too_easy",
        "suspicious_zero",
        "failed_strong",
        "judge_unreliable",
        "infra_error",
    ):
        assert counts[kind] >= 5, counts
    # and every too_easy row violates the weak gate it recorded
    too_easy = with_gate(table).filter(pl.col("decision") == "too_easy")
    assert too_easy.select((~WEAK_OK).all()).item()


# --- fresh re-scoring: figures beside the decision, a flag, an optional drop -----------------


def _fresh_round(fresh_weak: list[float], fresh_strong: list[float], gate: Gate = GATE) -> pl.DataFrame:  # fmt: skip
    rows = judgment_rows(weak=[0.4] * 3, strong=[0.8] * 3)
    rows += [judgment(CID, "fresh_weak", 64 + i, s) for i, s in enumerate(fresh_weak)]
    rows += [judgment(CID, "fresh_strong", 64 + i, s) for i, s in enumerate(fresh_strong)]
    return decide(*frames([challenge_row()], rows), gate)


def test_fresh_figures_sit_beside_the_selection_ones_and_never_decide() -> None:
    row = _fresh_round([0.5, 0.6, 0.7], [0.6] * 3).row(0, named=True)
    assert row["decision"] == "accepted" and row["gap"] == 0.4
    assert (row["fresh_weak_mean"], row["fresh_strong_mean"], row["fresh_gap"]) == (0.6, 0.6, 0.0)
    assert row["fresh_flag"] is True  # 0.0 < gate.fresh_min_gap (0.10)
    assert _fresh_round([0.3] * 3, [0.8] * 3).row(0, named=True)["fresh_flag"] is False


def test_drop_flagged_leaves_flagged_items_out_of_the_accepted_table() -> None:
    rounds = _fresh_round([0.6] * 3, [0.6] * 3)
    challenges = pl.DataFrame([challenge_row()], schema=schemas.CHALLENGES)
    sources = pl.DataFrame({"source_id": [f"src-{CID}"], "domain": ["math"]})
    lineage = [f"{role}_{c}" for role in ROLES for c in ("model", "prompt_hash")]
    made_by = pl.DataFrame({"candidate_id": [CID]} | {c: ["m"] for c in lineage})
    kept = accept.accepted_rows(rounds, challenges, sources, made_by, "rev")
    dropped = accept.accepted_rows(rounds, challenges, sources, made_by, "rev", drop_flagged=True)
    assert kept.height == 1 and kept["fresh_flag"][0] and dropped.is_empty()
