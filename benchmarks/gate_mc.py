"""The gate as a pure Monte Carlo over the simulation's hidden probabilities: no server, no
Prefect, seconds instead of minutes, so the sequential gate's settings can be tuned before a
loop runs (``benchmarks/compute.py`` then measures the chosen ones end to end).

It models what the loop does per candidate, call for call: the challenger and the verifier (2
calls), the judge's two controls on the first weak batch (2 answers × 3 criteria), and per
rollout one solver call plus one judge call per criterion. A candidate's hidden
``(p_weak, p_strong)`` come from ``benchmarks.sim.hidden_probs`` and each criterion of a rollout
is met with that probability, weighted as ``autodata.testing.roles.RUBRIC`` — the load server's
simulated judge. Each source runs up to ``max_rounds`` candidates, until one is accepted. The
fixed gate applies DESIGN §1's rules to ``rollouts.weak``/``rollouts.strong`` rollouts; the
sequential gate is ``tasks.gate_sequential`` with the loop's batching. Accepted items are then
re-scored with ``Options.fresh`` new rollouts per role (the fresh gap).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from autodata.settings import Gate, Rollouts
from autodata.testing.roles import RUBRIC
from benchmarks import common, sim
from tasks import gate_sequential as seq

WEIGHTS = [cast(int, c["weight"]) for c in RUBRIC]
CHALLENGE_CALLS = 2  # challenger + verifier
CONTROL_CALLS = 2 * len(WEIGHTS)  # reference and non-answer, every criterion
ROLLOUT_CALLS = 1 + len(WEIGHTS)  # the solver, then one judge call per criterion


@dataclass(frozen=True)
class Options:
    sources: int = 3000
    max_rounds: int = 8
    seed: int = 0
    fresh: int = 3  # fresh re-scoring rollouts per role of each accepted item

    @staticmethod
    def quick() -> Options:
        return Options(sources=300)


@dataclass
class Candidate:
    """One candidate's draws so far and what they cost."""

    p_weak: float
    p_strong: float
    rng: random.Random
    weak: list[float] = field(default_factory=list)
    strong: list[float] = field(default_factory=list)
    calls: int = CHALLENGE_CALLS + CONTROL_CALLS

    def draw(self, role: str, n: int) -> None:
        p, scores = (self.p_weak, self.weak) if role == "weak" else (self.p_strong, self.strong)
        scores += [score(self.rng, p) for _ in range(n)]
        self.calls += n * ROLLOUT_CALLS


def score(rng: random.Random, p: float) -> float:
    """One rollout's rubric score when each criterion is met with probability ``p``."""
    return sum(w for w in WEIGHTS if rng.random() < p) / sum(WEIGHTS)


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def fixed(c: Candidate, gate: Gate, rollouts: Rollouts) -> bool:
    """DESIGN §1 steps 3-7 on k rollouts per role, weak first."""
    c.draw("weak", rollouts.weak)
    weak_mean = round(mean(c.weak), 9)
    if weak_mean > gate.weak_mean_max or max(c.weak) > gate.weak_max_max:
        return False
    if gate.forbid_zero_weak and min(c.weak) == 0:
        return False
    c.draw("strong", rollouts.strong)
    strong_mean = round(mean(c.strong), 9)
    if gate.forbid_zero_strong and min(c.strong) == 0:
        return False
    return seq.means_in_zone(weak_mean, strong_mean, gate)


def sequential(c: Candidate, gate: Gate, rollouts: Rollouts) -> bool:
    """The sequential gate: weak batches until clear, then strong batches (weak kept paired)."""
    c.draw("weak", rollouts.first)
    while (verdict := seq.weak_verdict(c.weak, gate).status) == "open":
        if len(c.weak) >= rollouts.max_weak:
            return False
        c.draw("weak", min(rollouts.batch, rollouts.max_weak - len(c.weak)))
    if verdict == "outside":
        return False
    c.draw("strong", rollouts.first)
    while True:
        c.draw("weak", max(0, min(len(c.strong), rollouts.max_weak) - len(c.weak)))
        status = seq.zone_verdict(c.weak, c.strong, gate).status
        if status != "open" or len(c.strong) >= rollouts.max_strong:
            return status == "inside"
        c.draw("strong", min(rollouts.batch, rollouts.max_strong - len(c.strong)))


Policy = Callable[[Candidate, Gate, Rollouts], bool]


def run_arm(policy: Policy, gate: Gate, rollouts: Rollouts, opts: Options) -> dict[str, Any]:
    """Precision, recall, calls per accepted and the three gaps of accepted items."""
    rng = random.Random(opts.seed)
    calls = tried_zone = 0
    accepted: list[tuple[bool, float, float, float]] = []  # in zone, selected, fresh, true gap
    for source in range(opts.sources):
        for round_no in range(opts.max_rounds):
            p_weak, p_strong = sim.hidden_probs(f"{source}:{round_no}", opts.seed)
            c = Candidate(p_weak, p_strong, random.Random(rng.random()))
            zone = sim.truly_in_zone(p_weak, p_strong, gate)
            tried_zone += zone
            ok = policy(c, gate, rollouts)
            calls += c.calls
            if ok:
                fresh = Candidate(p_weak, p_strong, c.rng, calls=0)
                fresh.draw("weak", opts.fresh)
                fresh.draw("strong", opts.fresh)
                calls += fresh.calls
                gap = mean(c.strong) - mean(c.weak)
                fresh_gap = mean(fresh.strong) - mean(fresh.weak) if opts.fresh else gap
                accepted.append((zone, gap, fresh_gap, p_strong - p_weak))
                break
    return summarize(accepted, calls, tried_zone)


def summarize(
    accepted: list[tuple[bool, float, float, float]], calls: int, tried_zone: int
) -> dict[str, Any]:
    n = len(accepted)
    if not n:
        return {"accepted": 0, "precision": None, "recall": 0.0, "calls_per_accepted": None}
    cols = list(zip(*accepted, strict=True))
    return {
        "accepted": n,
        "precision": sum(cols[0]) / n,
        "recall": sum(cols[0]) / tried_zone if tried_zone else None,
        "calls_per_accepted": calls / n,
        "gap_selected": mean(list(cols[1])),
        "gap_fresh": mean(list(cols[2])),
        "gap_true": mean(list(cols[3])),
        "fresh_abs_error": mean([abs(f - t) for f, t in zip(cols[2], cols[3], strict=True)]),
    }


def run(
    opts: Options, gate: Gate | None = None, rollouts: Rollouts | None = None
) -> dict[str, Any]:
    """Both arms on the same hidden probabilities; ``ratio`` = sequential ÷ fixed calls per
    accepted (< 1: the sequential gate is cheaper)."""
    gate, rollouts = gate or Gate(), rollouts or Rollouts()
    arms = {name: run_arm(policy, gate, rollouts, opts)
            for name, policy in (("fixed", fixed), ("sequential", sequential))}  # fmt: skip
    cpa = [arms[a]["calls_per_accepted"] for a in ("sequential", "fixed")]
    return {
        "options": opts.__dict__,
        "gate": gate.model_dump(),
        "rollouts": rollouts.model_dump(),
        "arms": arms,
        "ratio": cpa[0] / cpa[1] if all(cpa) else None,
    }


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table."""
    out: list[tuple[str, Any]] = []
    for arm, figures in result["arms"].items():
        out += [(f"{arm}: {k}", v) for k, v in figures.items()]
    return [*out, ("ratio: calls/accepted sequential ÷ fixed", result["ratio"])]


def main(argv: list[str]) -> None:
    """``python -m benchmarks.gate_mc [--quick] [--seed N]``: print the table, write the result."""
    opts = Options.quick() if "--quick" in argv else Options()
    if "--seed" in argv:
        opts = Options(sources=opts.sources, seed=int(argv[argv.index("--seed") + 1]))
    result = run(opts) | {"machine": common.machine()}
    common.show("gate Monte Carlo (benchmarks/gate_mc.py)", rows(result))
    print(f"wrote {common.write_result('gate_mc', result)}")


if __name__ == "__main__":
    main(sys.argv[1:])
