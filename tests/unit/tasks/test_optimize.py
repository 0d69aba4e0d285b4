"""The optimizer's pure parts: the score from decisions, Boltzmann selection, minibatches, the
analyzer's digest (training sources only), the two requests, and the budgets."""

from __future__ import annotations

import math
import random
from collections import Counter

import polars as pl
import pytest
from builders import round_row, rounds_frame

from autodata import schemas
from autodata.settings import Optimize, RoleModel, Settings
from tasks.optimize import (
    EditorOut,
    Spend,
    analyzer_request,
    boltzmann,
    budget_stop,
    digest,
    editor_request,
    iteration_stop,
    minibatch,
    pass_rate,
    pick_parent,
    run_stop,
)
from tasks.optimize_surface import TARGETS, surface_of

SPEC = RoleModel(seed=5, temperature=0.2, max_tokens=100)
SEED = surface_of(Settings())


def rounds(*decisions: str, source: str = "s1") -> pl.DataFrame:
    return rounds_frame([round_row(f"c{i}", source, d) for i, d in enumerate(decisions)])


def test_the_score_is_the_accepted_share_of_generated_items() -> None:
    score = pass_rate(rounds("accepted", "too_easy", "too_easy", "failed_quality", "infra_error"))
    assert (score.score, score.accepted, score.generated, score.infra_errors) == (0.25, 1, 4, 1)
    assert score.decisions == {"accepted": 1, "failed_quality": 1, "infra_error": 1, "too_easy": 2}
    assert pass_rate(rounds("infra_error")).score is None
    assert pass_rate(schemas.empty(schemas.ROUNDS)).score is None


def test_boltzmann_weights_follow_exp_score_over_t() -> None:
    weights = boltzmann({"a": 0.4, "b": 0.2, "c": 0.2}, 0.1)
    assert sum(weights.values()) == pytest.approx(1)
    assert weights["a"] / weights["b"] == pytest.approx(math.exp(2))
    assert boltzmann({"a": 0.9, "b": 0.0}, 100)["b"] == pytest.approx(0.5, abs=0.01)
    assert boltzmann({"a": 50.0, "b": 0.0}, 0.001)["a"] == 1.0  # no overflow at small T


def test_parent_draws_are_seeded_and_follow_the_weights() -> None:
    scores = {"a": 0.3, "b": 0.2}
    assert pick_parent(scores, 0.1, random.Random(1)) == pick_parent(scores, 0.1, random.Random(1))
    rng = random.Random(0)
    drawn = Counter(pick_parent(scores, 0.1, rng)[0] for _ in range(4000))
    assert drawn["a"] / 4000 == pytest.approx(boltzmann(scores, 0.1)["a"], abs=0.03)


def test_minibatch_is_a_seeded_sample_of_training_ids() -> None:
    ids = [f"s{i}" for i in range(20)]
    first = minibatch(ids, 8, random.Random(3))
    assert first == minibatch(list(reversed(ids)), 8, random.Random(3))
    assert len(set(first)) == 8 and set(first) <= set(ids)
    assert minibatch(ids[:3], 8, random.Random(3)) == ids[:3]


def challenges_of(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("candidate_id").with_columns(context=pl.lit("a context with facts"))


def test_the_digest_counts_decisions_and_shows_items_within_its_limit() -> None:
    frame = rounds("too_easy", "too_easy", "accepted", "failed_quality")
    text = digest(frame, challenges_of(frame), ["s1"], 3000)
    assert (
        text.splitlines()[0] == "decisions: accepted 1, failed_quality 1, too_easy 2 (of 4 items)"
    )
    assert "[too_easy] weak 0.90, strong -" in text and "context: a context with facts" in text
    assert "why: failed_quality on purpose" in text
    short = digest(frame, challenges_of(frame), ["s1"], 300)
    assert len(short) <= 340 and short.endswith("more lines left out)")


def test_a_validation_source_never_reaches_the_digest() -> None:
    frame = pl.concat([rounds("too_easy"), rounds("accepted", source="v1")])
    with pytest.raises(ValueError, match="validation source"):
        digest(frame, challenges_of(frame), ["s1"], 3000)


def test_the_analyzer_reads_the_digest_and_the_challenger_side() -> None:
    request = analyzer_request("decisions: too_easy 3 (of 3 items)", SEED, SPEC, iteration=4)
    system, user = (text for _, text in request.messages)
    assert "root-cause analysis" in system
    assert "decisions: too_easy 3" in user and SEED["challenger_system"] in user
    assert (request.seed, request.temperature, request.response_model) == (9, 0.2, None)


def test_the_editor_sees_every_target_and_answers_json() -> None:
    request = editor_request("Too easy: add a rule.", SEED, SPEC, iteration=2)
    system, user = (text for _, text in request.messages)
    assert all(target in system for target in TARGETS)
    assert "$placeholder" in system  # the template's $$ escape
    assert "Too easy: add a rule." in user and SEED["verifier_system"] in user
    assert "### challenger.temperature = 0.3" in user
    assert request.response_model is EditorOut and request.seed == 7


def test_budgets_stop_the_run_and_the_iteration() -> None:
    limits = Optimize(iterations=3, max_calls=100, max_tokens=1000, iteration_calls=10)
    assert run_stop(Spend(5, 5), 3, limits) == "optimize.iterations=3 done"
    assert run_stop(Spend(5, 5), 2, limits) is None
    assert "optimize.max_calls=100" in (budget_stop(Spend(100, 0), limits) or "")
    assert "optimize.max_tokens=1000" in (budget_stop(Spend(1, 1000), limits) or "")
    assert "optimize.iteration_calls=10" in (iteration_stop(Spend(10, 0), limits) or "")
    assert iteration_stop(Spend(9, 10**9), limits) is None
    assert Spend.of({"weak": {"calls": 2, "tokens_in": 5, "tokens_out": 1}, "judge": {"calls": 1}}) == Spend(3, 6)  # fmt: skip
