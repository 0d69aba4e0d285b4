"""The pure parts of meta-optimization: the score, parent selection, the analyzer's view of a run,
the analyzer's and editor's requests, and the budgets.

Source: Meta FAIR's Autodata write-up. Per iteration a parent is drawn from the population by
Boltzmann sampling (P ∝ exp(score / T), T = 0.1), run on a training minibatch; an analyzer
writes a root-cause analysis of that run, an editor a new variant; parent and child are scored
on held-out validation documents, and the child joins only if strictly better. The score is the
share of generated items the gate accepts — computed here from the decisions, never reported by
a model. The loop itself is ``flows/optimize.py``; the editable surface ``tasks/optimize_surface``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel, Field

from autodata import prompts
from autodata.llm.client import ChatRequest
from autodata.settings import Optimize, RoleModel
from tasks.optimize_surface import SAMPLING_TARGETS, TARGETS, TEXT_TARGETS, ProposedEdit

INFRA_ERROR = "infra_error"


class EditorOut(BaseModel):
    """The editor's JSON: why, and the edits (checked by ``optimize_surface.apply_edits``)."""

    rationale: str = Field("", max_length=600)
    edits: list[ProposedEdit] = Field(default_factory=list, max_length=8)


@dataclass(frozen=True)
class RunScore:
    """One run's score from its rounds: ``accepted / generated`` (rounds with a decision; an
    ``infra_error`` round is not one), None when nothing was generated."""

    score: float | None
    accepted: int
    generated: int
    infra_errors: int
    decisions: dict[str, int]


def pass_rate(rounds: pl.DataFrame) -> RunScore:
    """Score a run by the gate's decisions (``rounds``: the ``schemas.ROUNDS`` frame)."""
    counts = dict(rounds["decision"].value_counts().sort("decision").iter_rows())
    infra = int(counts.get(INFRA_ERROR, 0))
    generated, accepted = rounds.height - infra, int(counts.get("accepted", 0))
    score = accepted / generated if generated else None
    return RunScore(score, accepted, generated, infra, {k: int(v) for k, v in counts.items()})


def boltzmann(scores: Mapping[str, float], temperature: float) -> dict[str, float]:
    """Selection probability of each variant: ∝ exp(score / T) (shifted by the best score, so
    no overflow at small T)."""
    top = max(scores.values())
    raw = {key: math.exp((value - top) / temperature) for key, value in scores.items()}
    total = sum(raw.values())
    return {key: weight / total for key, weight in raw.items()}


def pick_parent(
    scores: Mapping[str, float], temperature: float, rng: random.Random
) -> tuple[str, float]:
    """A parent drawn by :func:`boltzmann` with ``rng``, and its probability."""
    weights = boltzmann(scores, temperature)
    ids = sorted(weights)
    chosen = rng.choices(ids, weights=[weights[i] for i in ids])[0]
    return chosen, weights[chosen]


def minibatch(train_ids: Sequence[str], size: int, rng: random.Random) -> list[str]:
    """``size`` training sources drawn without replacement (all of them if fewer), sorted."""
    return sorted(rng.sample(sorted(train_ids), min(size, len(train_ids))))


def digest(
    rounds: pl.DataFrame, challenges: pl.DataFrame, training: Sequence[str], limit: int
) -> str:
    """What the analyzer reads of a run: decision counts, then one line per item (decision,
    scores, question, context and reason), at most ``limit`` characters.

    Raises ``ValueError`` if a round is not on a ``training`` source: validation sources must
    never reach the analyzer (a programming error, not a user's)."""
    if not set(rounds["source_id"].to_list()) <= set(training):
        raise ValueError("a validation source reached the analyzer's digest")
    items = rounds.join(challenges.select("candidate_id", "context"), on="candidate_id", how="left")
    counts = ", ".join(f"{k} {v}" for k, v in pass_rate(rounds).decisions.items())
    lines = [f"decisions: {counts} (of {rounds.height} items)"]
    for row in items.sort("decision", "round", "candidate_id").iter_rows(named=True):
        lines.append(_item_line(row))
    return _clip_lines(lines, limit)


def _item_line(row: Mapping[str, Any]) -> str:
    scores = ", ".join(f"{k} {_num(row[f'{k}_mean'])}" for k in ("weak", "strong"))
    parts = [f"- [{row['decision']}] {scores}", f"Q: {_short(row['question'], 300)}",
             f"context: {_short(row['context'], 240)}"]  # fmt: skip
    if row["reason"]:
        parts.append(f"why: {_short(row['reason'], 200)}")
    return " | ".join(parts)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _short(text: str | None, n: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _clip_lines(lines: list[str], limit: int) -> str:
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > limit:
            kept.append(f"(… {len(lines) - len(kept)} more lines left out)")
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def analyzer_request(run_digest: str, surface: Mapping[str, Any], spec: RoleModel, iteration: int) -> ChatRequest:  # fmt: skip
    """The analyzer's request: the parent's challenger and verifier instructions and the digest."""
    instructions = "\n\n".join(
        f"[{n}]\n{surface[n]}" for n in ("challenger_system", "verifier_system")
    )
    user = prompts.render(
        "optimizer/analyzer_user", instructions=instructions, rounds=prompts.fence(run_digest)
    )
    return ChatRequest.of(prompts.render("optimizer/analyzer_system"), user, temperature=spec.temperature,
                          top_p=spec.top_p, max_tokens=spec.max_tokens, seed=spec.seed + iteration)  # fmt: skip


def editor_request(analysis: str, surface: Mapping[str, Any], spec: RoleModel, iteration: int) -> ChatRequest:  # fmt: skip
    """The editor's request: the analysis and the parent's whole surface; JSON :class:`EditorOut`."""
    shown = [f"### {n}\n{surface[n]}" for n in TEXT_TARGETS]
    shown += [f"### {k} = {surface[k]}" for k in SAMPLING_TARGETS]
    system = prompts.render("optimizer/editor_system", targets=", ".join(TARGETS))
    user = prompts.render(
        "optimizer/editor_user", analysis=prompts.fence(analysis), surface="\n\n".join(shown)
    )
    return ChatRequest.of(system, user, temperature=spec.temperature, top_p=spec.top_p, max_tokens=spec.max_tokens,
                          seed=spec.seed + iteration, response_model=EditorOut)  # fmt: skip


@dataclass(frozen=True)
class Spend:
    """Model calls sent (cache hits are free) and tokens (in + out) they used."""

    calls: int = 0
    tokens: int = 0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.calls + other.calls, self.tokens + other.tokens)

    @staticmethod
    def of(per_role: Mapping[str, Mapping[str, Any]]) -> Spend:
        """From call counts per role (``CallStats.as_dict`` of each)."""
        calls = sum(int(r.get("calls", 0)) for r in per_role.values())
        tokens = sum(int(r.get("tokens_in", 0)) + int(r.get("tokens_out", 0)) for r in per_role.values())  # fmt: skip
        return Spend(calls, tokens)


def run_stop(spent: Spend, iterations_done: int, limits: Optimize) -> str | None:
    """Why the whole optimization stops now (iterations, calls or tokens spent), or None."""
    if iterations_done >= limits.iterations:
        return f"optimize.iterations={limits.iterations} done"
    return budget_stop(spent, limits)


def budget_stop(spent: Spend, limits: Optimize) -> str | None:
    """Why the whole optimization stops now (its calls or tokens spent), or None."""
    return _over(spent, limits.max_calls, limits.max_tokens, "max_calls", "max_tokens")


def iteration_stop(spent: Spend, limits: Optimize) -> str | None:
    """Why the current iteration stops now (its calls or tokens spent), or None."""
    return _over(spent, limits.iteration_calls, limits.iteration_tokens, "iteration_calls", "iteration_tokens")  # fmt: skip


def _over(spent: Spend, calls: int | None, tokens: int | None, calls_key: str, tokens_key: str) -> str | None:  # fmt: skip
    if calls is not None and spent.calls >= calls:
        return f"call budget spent ({spent.calls} calls, optimize.{calls_key}={calls})"
    if tokens is not None and spent.tokens >= tokens:
        return f"token budget spent ({spent.tokens} tokens, optimize.{tokens_key}={tokens})"
    return None
