"""The sequential gate's statistics: the incomplete beta against closed forms, the posterior's
coin-flip and fraction cases, the zone probability against sampling, and every stopping rule
pinned at its threshold (>= and <= are the documented sides)."""

from __future__ import annotations

import math
import random

import pytest

from autodata.settings import Gate, Rollouts
from tasks.gate_sequential import (
    MORE,
    PENDING_STRONG,
    Posterior,
    betainc,
    decide,
    evidence,
    interval,
    means_in_zone,
    posterior,
    prob_weak_inside,
    prob_zone,
    quantile,
    weak_verdict,
    zone_verdict,
)

SEQ = Gate()


@pytest.mark.parametrize("x", [0.01, 0.2, 0.5, 0.77, 0.99])
@pytest.mark.parametrize(("a", "b"), [(1.0, 1.0), (3.5, 1.0), (1.0, 0.4), (0.3, 1.0), (1.0, 40.0)])
def test_betainc_matches_closed_forms(x: float, a: float, b: float) -> None:
    # I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b
    expected = x**a if b == 1.0 else 1 - (1 - x) ** b
    assert betainc(a, b, x) == pytest.approx(expected, abs=1e-12)


def test_betainc_symmetry_and_edges() -> None:
    for a in (0.2, 2.0, 37.5, 300.0):
        assert betainc(a, a, 0.5) == pytest.approx(0.5, abs=1e-12)
        assert betainc(a, 2.5, 0.3) == pytest.approx(1 - betainc(2.5, a, 0.7), abs=1e-12)
    assert betainc(2.0, 3.0, 0.0) == 0.0
    assert betainc(2.0, 3.0, 1.0) == 1.0


def test_coin_flips_give_the_beta_bernoulli_posterior() -> None:
    post = posterior([1.0, 0.0, 1.0, 1.0], prior_weight=1.0)
    assert (post.a, post.b, post.n) == (pytest.approx(3.5), pytest.approx(1.5), 4)


def test_fractions_are_narrower_than_coin_flips_with_the_same_mean() -> None:
    flips, fractions = posterior([1.0, 0.0] * 3, 1.0), posterior([0.5] * 6, 1.0)
    assert flips.mean == pytest.approx(fractions.mean)
    width = [hi - lo for lo, hi in (interval(flips, 0.9), interval(fractions, 0.9))]
    assert width[1] < 0.6 * width[0]


def test_identical_scores_keep_the_posterior_wide() -> None:
    low, high = interval(posterior([0.25, 0.25], 1.0), 0.9)
    assert low < 0.15 and high > 0.45


@pytest.mark.parametrize("scores", [[1.2], [-0.1], [math.nan]])
def test_scores_outside_the_unit_interval_raise(scores: list[float]) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        posterior(scores, 1.0)


def test_prior_weight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="prior_weight"):
        posterior([0.5], 0.0)


def test_zone_is_a_product_where_the_gap_cannot_bind() -> None:
    # every weak mean <= 0.55 is at least min_gap below every strong mean >= 0.60
    gate = Gate(min_gap=0.05, weak_mean_max=0.55)
    weak, strong = Posterior(2.0, 5.0, 5), Posterior(6.0, 2.0, 6)
    band = betainc(6.0, 2.0, 0.95) - betainc(6.0, 2.0, 0.60)
    expected = betainc(2.0, 5.0, 0.55) * band
    assert prob_zone(weak, strong, gate) == pytest.approx(expected, abs=1e-9)


def test_zone_matches_sampling_where_the_gap_binds() -> None:
    weak, strong = Posterior(6.0, 6.0, 10), Posterior(9.0, 4.0, 11)
    rng, n = random.Random(7), 200_000
    hits = 0
    for _ in range(n):
        w, s = rng.betavariate(weak.a, weak.b), rng.betavariate(strong.a, strong.b)
        hits += w <= 0.65 and 0.6 <= s < 0.95 and s - w >= 0.2
    assert prob_zone(weak, strong, SEQ) == pytest.approx(hits / n, abs=0.005)


def test_clear_cases_stop_after_the_first_batch() -> None:
    assert weak_verdict([1.0, 1.0], SEQ).status == "outside"
    assert weak_verdict([0.25, 0.25], SEQ).status == "inside"
    assert weak_verdict([0.67, 0.58], SEQ).status == "open"


def _gate(**over: float) -> Gate:
    return Gate(**over)  # type: ignore[arg-type]


def test_weak_rule_boundaries() -> None:
    scores = [0.58, 0.42]
    p = prob_weak_inside(posterior(scores, 1.0), SEQ)
    assert weak_verdict(scores, _gate(weak_confidence=p)).status == "inside"
    assert weak_verdict(scores, _gate(weak_confidence=p + 1e-9)).status == "open"
    low = _gate(weak_futility=p, weak_confidence=min(p + 0.1, 0.99))
    assert weak_verdict(scores, low).status == "outside"
    below = _gate(weak_futility=p - 1e-9, weak_confidence=min(p + 0.1, 0.99))
    assert weak_verdict(scores, below).status == "open"


def test_zone_rule_boundaries() -> None:
    weak, strong = [0.25] * 6, [0.75] * 6
    p = zone_verdict(weak, strong, SEQ).prob
    assert zone_verdict(weak, strong, _gate(confidence=p)).status == "inside"
    assert zone_verdict(weak, strong, _gate(confidence=p + 1e-9)).status == "open"
    assert zone_verdict(weak, strong, _gate(futility=p, confidence=0.999)).status == "outside"
    assert zone_verdict(weak, strong, _gate(futility=p - 1e-9, confidence=0.999)).status == "open"


def test_acceptance_also_needs_the_sample_means_in_the_zone() -> None:
    # a sure-looking posterior is not enough when the recorded means break a condition
    weak, strong = [0.25] * 6, [0.95] * 6
    verdict = zone_verdict(weak, strong, _gate(confidence=0.01, futility=0.0))
    assert not means_in_zone(0.25, 0.95, SEQ)
    assert verdict.status == "open"


def test_sample_means_use_the_gates_sides() -> None:
    assert means_in_zone(0.65, 0.85, SEQ)  # weak_mean_max and min_gap are inclusive
    assert means_in_zone(0.40, 0.60, SEQ)  # strong_mean_min inclusive
    assert not means_in_zone(0.40, 0.95, SEQ)  # strong_mean_max exclusive
    assert not means_in_zone(0.66, 0.90, SEQ)


@pytest.mark.parametrize(("a", "b"), [(0.5, 0.6), (47.3, 5.7), (2.0, 9.0), (0.8, 60.0)])
@pytest.mark.parametrize("q", [0.001, 0.075, 0.5, 0.925, 0.999])
def test_quantile_inverts_the_cdf(a: float, b: float, q: float) -> None:
    post = Posterior(a, b, 3)
    assert betainc(a, b, quantile(post, q)) == pytest.approx(q, abs=1e-8)


# --- decisions on the scores so far -------------------------------------------------------

CAPS = Rollouts(first=2, batch=1, max_weak=4, max_strong=6)


def test_weak_step_decisions() -> None:
    assert decide([0.25, 0.25], [], SEQ, CAPS) == (PENDING_STRONG, "")
    assert decide([0.67, 0.58], [], SEQ, CAPS) == (MORE, "")
    label, why = decide([1.0, 1.0], [], SEQ, CAPS)
    assert label == "too_easy" and "<= weak_futility 0.6" in why


def test_an_open_weak_step_at_its_cap_is_too_easy() -> None:
    label, why = decide([0.58, 0.58, 0.67, 0.58], [], SEQ, CAPS)
    assert label == "too_easy" and "after 4 weak rollouts" in why


def test_strong_step_decisions() -> None:
    assert decide([0.25] * 6, [0.75] * 6, SEQ, CAPS)[0] == "accepted"
    assert decide([0.25] * 2, [0.67] * 2, SEQ, CAPS) == (MORE, "")
    label, why = decide([0.25] * 2, [0.67] * 6, _gate(confidence=0.999), CAPS)
    assert label == "failed_strong" and "after 6 strong rollouts" in why
    label, why = decide([0.25] * 2, [0.25, 0.33], SEQ, CAPS)
    assert label == "failed_strong" and "<= futility 0.3" in why


def test_paired_weak_rollouts_that_turn_out_easy_make_it_too_easy() -> None:
    label, _ = decide([0.25, 0.33, 1.0, 1.0, 1.0, 1.0], [1.0] * 4, SEQ, CAPS)
    assert label == "too_easy"


def test_evidence_records_every_score_and_the_intervals() -> None:
    ev = evidence([0.25, 0.5], [0.75, 1.0, 0.67], SEQ)
    assert (ev["weak_n"], ev["strong_n"]) == (2, 3)
    assert ev["weak_scores"] == [0.25, 0.5] and ev["strong_scores"] == [0.75, 1.0, 0.67]
    assert ev["weak_low"] < 0.375 < ev["weak_high"] and ev["strong_low"] < 0.81 < ev["strong_high"]
    assert 0 < ev["prob_zone"] < ev["prob_weak"] < 1


def test_evidence_without_strong_rollouts_has_no_zone() -> None:
    ev = evidence([0.25], [], SEQ)
    assert ev["strong_low"] is None and ev["prob_zone"] is None and ev["prob_weak"] > 0
