"""The sequential gate's statistics: how sure are we that a candidate's mean scores lie inside
the gate's band, given the rollouts graded so far? Pure functions over plain floats.

**Model (Bayesian, not anytime-valid).** The scores of one role's rollouts, each a fraction in
[0, 1], are treated as draws from an unknown distribution F on [0, 1] with a Dirichlet-process
prior (Ferguson 1973) whose base measure puts ``prior_weight / 2`` pseudo-rollouts at 0 and as
many at 1. The posterior of the mean of F is the mean of a Dirichlet-weighted sample: the
observed scores with weight 1 each plus the two pseudo-rollouts (the Bayesian bootstrap,
Rubin 1981, with a prior). Its mean and variance have closed forms,

    m = (Σx + a0) / N,   v = ((Σx² + a0) / N − m²) / (N + 1),   N = n + prior_weight,
    a0 = b0 = prior_weight / 2,

and the posterior is summarised by the Beta distribution with that mean and variance.

**Scores are fractions, not coin flips.** The model uses the scores' own spread: when every
score is 0 or 1 the moment-matched Beta is exactly the Beta-Bernoulli posterior
Beta(a0 + successes, b0 + failures); when scores are fractions (a rubric's 0.58, 0.75, …) their
variance is below the coin-flip variance m(1−m) and the posterior narrows accordingly. Nothing
assumes the per-criterion verdicts are independent. The pseudo-rollouts at 0 and 1 keep the
posterior wide when few, identical scores have been seen (two scores of 0.25 do not mean the
mean is exactly 0.25).

**What it promises.** A posterior probability, calibrated if the prior is right; it is *not* a
frequentist error rate, and peeking after every batch is harmless to a Bayesian statement but
not an anytime-valid guarantee. Anytime-valid confidence sequences for bounded means
(Waudby-Smith & Ramdas 2024, JRSS-B, "Estimating means of bounded random variables by
betting"; empirical-Bernstein CS, Howard et al. 2021, Ann. Stat.) were measured first: at the
gate's band widths they need 10–20 rollouts per role before the strong band or the gap is
settled, more than the compute budget allows (docs/architecture.md, benchmarks/README.md).

Decisions (thresholds in :class:`autodata.settings.Gate`): the weak step stops *inside* when
P(weak mean ≤ weak_mean_max) ≥ ``weak_confidence`` and *outside* when it is ≤ ``futility``;
the strong step accepts when P(every mean condition of the gate) ≥ ``confidence`` and the
sample means satisfy them too, and gives up when that probability is ≤ ``futility``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from autodata.settings import Gate, Rollouts

Status = Literal["inside", "outside", "open"]
_CF_STEPS, _CF_EPS, _TINY = 300, 1e-13, 1e-300  # continued-fraction numerics (not thresholds)
_STEPS = 48  # integration pieces over the weak mean where the gap condition binds
_QUANTILE_STEPS, _QUANTILE_TOL = 60, 1e-10  # safeguarded Newton on the cdf (not thresholds)


@dataclass(frozen=True)
class Posterior:
    """Beta(a, b) summary of one role's mean score after ``n`` rollouts."""

    a: float
    b: float
    n: int

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)


@dataclass(frozen=True)
class Verdict:
    """Where the evidence places a candidate: ``prob`` = P(the step's condition holds)."""

    status: Status
    prob: float


def posterior(scores: Sequence[float], prior_weight: float) -> Posterior:
    """Moment-matched Beta posterior of the mean of ``scores`` (each in [0, 1]).

    Raises ValueError for a score outside [0, 1] or a non-positive ``prior_weight``.
    """
    if prior_weight <= 0:
        raise ValueError("prior_weight must be > 0 (pseudo-rollouts keep the posterior proper)")
    if any(not 0.0 <= x <= 1.0 for x in scores):
        raise ValueError("scores must lie in [0, 1]")
    half, total = prior_weight / 2, len(scores) + prior_weight
    mean = (sum(scores) + half) / total
    second = (sum(x * x for x in scores) + half) / total
    var = (second - mean * mean) / (total + 1)
    k = mean * (1 - mean) / var - 1
    return Posterior(mean * k, (1 - mean) * k, len(scores))


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) = P(Beta(a, b) ≤ x).

    Continued fraction of DLMF 8.17.22, evaluated by the modified Lentz method (Press et al.,
    Numerical Recipes §6.4 describe the same); the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) keeps
    it in its fast-converging region.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _fraction(b, a, 1.0 - x) / b


def _fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of :func:`betainc` (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _CF_STEPS):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # fmt: skip
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + num / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _CF_EPS:
            break
    return h


def cdf(post: Posterior, x: float) -> float:
    """P(mean ≤ x) under ``post``."""
    return betainc(post.a, post.b, x)


def density(post: Posterior, x: float) -> float:
    """The Beta density of ``post`` at ``x`` in (0, 1)."""
    a, b = post.a, post.b
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    return math.exp(log_norm + (a - 1) * math.log(x) + (b - 1) * math.log1p(-x))


def quantile(post: Posterior, q: float) -> float:
    """The ``q``-quantile of ``post``: Newton steps on :func:`cdf`, kept inside a bracket that
    shrinks every step (a bisection step whenever Newton would leave it)."""
    low, high, x = 0.0, 1.0, min(max(post.mean, 1e-6), 1 - 1e-6)
    for _ in range(_QUANTILE_STEPS):
        gap = cdf(post, x) - q
        if abs(gap) < _QUANTILE_TOL or high - low < _QUANTILE_TOL:
            break
        low, high = (x, high) if gap < 0 else (low, x)
        slope = density(post, x)
        step = x - gap / slope if slope > 0 else -1.0
        x = step if low < step < high else (low + high) / 2
    return x


def interval(post: Posterior, level: float) -> tuple[float, float]:
    """Equal-tailed credible interval holding ``level`` of the posterior."""
    tail = (1 - level) / 2
    return quantile(post, tail), quantile(post, 1 - tail)


def prob_weak_inside(weak: Posterior, gate: Gate) -> float:
    """P(weak mean ≤ gate.weak_mean_max)."""
    return cdf(weak, gate.weak_mean_max)


def prob_zone(weak: Posterior, strong: Posterior, gate: Gate) -> float:
    """P(weak ≤ weak_mean_max, strong_mean_min ≤ strong < strong_mean_max, strong − weak ≥
    min_gap), the two means independent a posteriori (the solvers' rollouts are).

    Integrates over the weak mean: below ``strong_mean_min − min_gap`` the gap cannot bind, so
    that part is one product; above it, ``_STEPS`` pieces of the weak posterior's mass (a
    Stieltjes sum, exact in the limit and safe where the weak density is unbounded).
    """
    hi = cdf(strong, gate.strong_mean_max)

    def strong_ok(w: float) -> float:
        return max(0.0, hi - cdf(strong, max(gate.strong_mean_min, w + gate.min_gap)))

    knee = min(max(gate.strong_mean_min - gate.min_gap, 0.0), gate.weak_mean_max)
    total = cdf(weak, knee) * strong_ok(0.0)
    width = (gate.weak_mean_max - knee) / _STEPS
    below = cdf(weak, knee)
    for i in range(1, _STEPS + 1):
        edge = knee + i * width
        upper = cdf(weak, edge)
        total += (upper - below) * strong_ok(edge - width / 2)
        below = upper
    return min(max(total, 0.0), 1.0)


def means_in_zone(weak_mean: float, strong_mean: float, gate: Gate) -> bool:
    """The gate's mean conditions on the sample means (what the rounds table records)."""
    return (
        weak_mean <= gate.weak_mean_max
        and gate.strong_mean_min <= strong_mean < gate.strong_mean_max
        and round(strong_mean - weak_mean, 9) >= gate.min_gap
    )


def weak_verdict(weak: Sequence[float], gate: Gate) -> Verdict:
    """After the weak rollouts so far: inside (run strong), outside (too easy) or open."""
    prob = prob_weak_inside(posterior(weak, gate.prior_weight), gate)
    if prob >= gate.weak_confidence:
        return Verdict("inside", prob)
    return Verdict("outside" if prob <= gate.weak_futility else "open", prob)


def zone_verdict(weak: Sequence[float], strong: Sequence[float], gate: Gate) -> Verdict:
    """After both roles' rollouts so far: inside (accept), outside (give up) or open."""
    prob = prob_zone(posterior(weak, gate.prior_weight), posterior(strong, gate.prior_weight), gate)
    means_ok = means_in_zone(sum(weak) / len(weak), sum(strong) / len(strong), gate)
    if prob >= gate.confidence and means_ok:
        return Verdict("inside", prob)
    return Verdict("outside" if prob <= gate.futility else "open", prob)


# --- the gate's decision on a candidate's scores so far ---------------------------------------

PENDING_STRONG = "pending_strong"  # the weak step is settled inside: the strong solver runs next
MORE = "pending_rollouts"  # still open below the cap: the loop draws another batch


def decide(
    weak: Sequence[float], strong: Sequence[float], gate: Gate, rollouts: Rollouts
) -> tuple[str, str]:
    """(decision, reason) of the sequential gate, or a pending marker (:data:`PENDING_STRONG`,
    :data:`MORE`). A candidate still open at its cap is rejected: undecided is not accepted."""
    if not strong:
        return _weak_step(weak, gate, rollouts)
    zone = zone_verdict(weak, strong, gate)
    if zone.status == "inside":
        return "accepted", ""
    if zone.status == "open" and len(strong) < rollouts.max_strong:
        return MORE, ""
    why = (
        f"<= futility {gate.futility:g}"
        if zone.status == "outside"
        else f"still below confidence {gate.confidence:g} after {len(strong)} strong rollouts"
    )
    p_weak = prob_weak_inside(posterior(weak, gate.prior_weight), gate)
    label = "too_easy" if p_weak <= gate.weak_futility else "failed_strong"
    return label, f"P(every mean condition) = {zone.prob:.2f} {why}"


def _weak_step(weak: Sequence[float], gate: Gate, rollouts: Rollouts) -> tuple[str, str]:
    verdict = weak_verdict(weak, gate)
    if verdict.status == "inside":
        return PENDING_STRONG, ""
    where = f"P(weak_mean <= {gate.weak_mean_max:g}) = {verdict.prob:.2f}"
    if verdict.status == "outside":
        return "too_easy", f"{where} <= weak_futility {gate.weak_futility:g}"
    if len(weak) >= rollouts.max_weak:
        return "too_easy", f"{where}, below weak_confidence {gate.weak_confidence:g} after {len(weak)} weak rollouts"  # fmt: skip
    return MORE, ""


def evidence(weak: Sequence[float], strong: Sequence[float], gate: Gate) -> dict[str, Any]:
    """What a ``rounds`` row records about the scores at its decision (``schemas.EVIDENCE``):
    counts, every score, credible intervals at ``gate.confidence`` and both probabilities."""
    out: dict[str, Any] = {"weak_n": len(weak), "strong_n": len(strong),
                           "weak_scores": list(weak), "strong_scores": list(strong)}  # fmt: skip
    posts = {role: posterior(xs, gate.prior_weight) for role, xs in (("weak", weak), ("strong", strong)) if xs}  # fmt: skip
    for role in ("weak", "strong"):
        low, high = interval(posts[role], gate.confidence) if role in posts else (None, None)
        out |= {f"{role}_low": low, f"{role}_high": high}
    out["prob_weak"] = prob_weak_inside(posts["weak"], gate) if "weak" in posts else None
    both = len(posts) == 2
    out["prob_zone"] = prob_zone(posts["weak"], posts["strong"], gate) if both else None
    return out
