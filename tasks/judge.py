"""Stage: judge. A yes/no verdict per rubric criterion on each answer; the score is computed in
code (Σ weight·met / Σ weight), never taken from the model. The judge never sees the reference
answer.

Two protocols (``loop.judge_protocol``): ``per_answer`` (default) asks once per answer for a
schema-guided verdict on every criterion, each after a one-sentence reason — room for a small
model to reason, a verdict always present, one call instead of one per criterion;
``per_criterion`` asks one one-word question per criterion and reads P(yes) from the first
token's logprobs (RULERS-style probability scores, where the server gives logprobs). Controls: on every candidate it also grades the reference answer (should be met) and a
non-answer (should not) — ``accept`` uses them to detect a judge that cannot tell them apart.

Verifiable mode (DESIGN §1) grades without a model: a rollout scores 1 when the final answer it
states is equivalent to the reference answer's (:func:`score_verifiable`, :mod:`tasks.verifiable`).

Input: rollouts + challenges. Output: ``schemas.JUDGMENTS``.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, create_model

from autodata import prompts, schemas
from autodata.aio import map_bounded, window_for
from autodata.errors import CallError
from autodata.llm.client import ChatClient, ChatRequest, ChatResult
from autodata.progress import Reporter
from autodata.settings import RoleModel
from autodata.stagefile import persisted
from tasks.verifiable import equivalent, extract, reference_answer

TOP_LOGPROBS = 5
Protocol = Literal["per_answer", "per_criterion"]
_YES = re.compile(r"\W*yes\b", re.IGNORECASE)  # "Yes", "**yes**", " yes." — not "Yesterday"


def _graded(item: dict, answer: str) -> dict[str, str]:
    """The untrusted texts every judge prompt shows, fenced."""
    return {"context": prompts.fence(item["context"]), "question": prompts.fence(item["question"]),
            "answer": prompts.fence(answer)}  # fmt: skip


def judge_request(item: dict, answer: str, criterion: str, spec: RoleModel) -> ChatRequest:
    """One yes/no verdict on one criterion; asks for first-token logprobs."""
    user = prompts.render("judge_user", **_graded(item, answer), criterion=prompts.fence(criterion))
    return ChatRequest.of(
        prompts.render("judge_system"),
        user,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        seed=spec.seed,
        top_logprobs=TOP_LOGPROBS,
    )


def verdict(result: ChatResult) -> tuple[bool, float | None]:
    """(met, P(yes)) from a reply: met if it starts with 'yes'; P(yes) from logprobs if given."""
    met = _YES.match(result.texts[0]) is not None
    mass = {"yes": 0.0, "no": 0.0}
    for token, logprob in (result.top_logprobs[0] if result.top_logprobs else {}).items():
        word = token.strip().lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    return met, (mass["yes"] / total if total > 0 else None)


def weighted(values: list[float], weights: list[int]) -> float:
    """Σ weight·value / Σ weight."""
    return sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)


class Verdict(BaseModel):
    """One criterion's verdict in the per-answer protocol; the reason comes first, so the verdict
    is written after it (bounded so guided decoding terminates)."""

    reason: str = Field(max_length=300)
    verdict: Literal["yes", "no"]


@functools.cache
def rubric_model(count: int) -> type[BaseModel]:
    """The reply schema for a rubric of ``count`` criteria: ``criterion_1`` … ``criterion_<count>``,
    each a :class:`Verdict` (fixed keys, in order: a small model cannot skip or merge one)."""
    fields: dict[str, Any] = {f"criterion_{i}": (Verdict, ...) for i in range(1, count + 1)}
    return create_model("RubricVerdicts", **fields)


def rubric_request(
    item: dict, answer: str, spec: RoleModel, reference: bool = False
) -> ChatRequest:
    """One call grading ``answer`` on every criterion of ``item``'s rubric; ``reference``
    (``loop.judge_reference``) also shows the judge the reference answer to check values against."""
    rubric = item["rubric"]
    criteria = "\n".join(f"{i}. {prompts.fence(c['criterion'])}" for i, c in enumerate(rubric, 1))
    shown = prompts.render(
        "judge_reference", reference_answer=prompts.fence(item["reference_answer"])
    )
    user = prompts.render(
        "judge_rubric_user",
        **_graded(item, answer),
        reference=shown if reference else "",
        criteria=criteria,
        count=str(len(rubric)),
    )
    return ChatRequest.of(
        prompts.render("judge_rubric_system"),
        user,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        seed=spec.seed,
        response_model=rubric_model(len(rubric)),
    )


def rubric_verdicts(result: ChatResult, count: int) -> list[bool]:
    """The per-criterion verdicts of a per-answer reply, in rubric order."""
    parsed = result.parsed[0]
    return [getattr(parsed, f"criterion_{i}").verdict == "yes" for i in range(1, count + 1)]


FAILED: dict[str, Any] = {"criterion_met": [], "criterion_p_yes": [], "score": None, "p_score": None,
          "finish_reasons": [], "extracted": None}  # fmt: skip


def _columns(
    met: list[bool], p_yes: list[float | None], weights: list[int], finish: list[str]
) -> dict:
    p_score = weighted([p for p in p_yes if p is not None], weights) if None not in p_yes else None
    return {"criterion_met": met, "criterion_p_yes": p_yes, "score": weighted([float(m) for m in met], weights),
            "p_score": p_score, "call_status": "ok", "finish_reasons": finish, "extracted": None}  # fmt: skip


async def grade(
    item: dict, answer: str, client: ChatClient, spec: RoleModel, protocol: Protocol = "per_answer",
    reference: bool = False,
) -> dict:  # fmt: skip
    """All criteria of one answer → judgment columns (status infra_error if a call failed);
    ``reference``: the per-answer judge also sees the reference answer."""
    if protocol == "per_criterion":
        return await grade_per_criterion(item, answer, client, spec)
    weights = [c["weight"] for c in item["rubric"]]
    try:
        result = await client.chat(rubric_request(item, answer, spec, reference))
    except CallError:  # a reply cut at max_tokens or never valid JSON: no verdict to read
        return FAILED | {"call_status": "infra_error"}
    met = rubric_verdicts(result, len(weights))
    return _columns(met, [None] * len(met), weights, result.finish_reasons[:1])


async def grade_per_criterion(item: dict, answer: str, client: ChatClient, spec: RoleModel) -> dict:
    """One call per criterion of one answer → judgment columns.

    A verdict is read from the start of the reply, so a reply cut after its first words still
    counts; one that was all reasoning fails in the client (``CallError`` kind ``truncated``).
    """
    rubric = item["rubric"]
    try:
        results = await asyncio.gather(
            *(client.chat(judge_request(item, answer, c["criterion"], spec)) for c in rubric)
        )
    except CallError:
        return FAILED | {"call_status": "infra_error"}
    verdicts = [verdict(r) for r in results]
    finish = [r.finish_reasons[0] for r in results]
    weights = [c["weight"] for c in rubric]
    return _columns([m for m, _ in verdicts], [p for _, p in verdicts], weights, finish)


def _answers(
    items: pl.DataFrame, rollouts: pl.DataFrame, non_answer: str, controls: bool
) -> list[tuple[dict, str, int, str | None, str]]:
    """(item, role, rollout, answer, status) to grade; answer None unless the rollout is ok
    (a failed or truncated answer is never graded: its status passes through)."""
    by_id = {row["candidate_id"]: row for row in items.iter_rows(named=True)}
    jobs = [(by_id[r["candidate_id"]], r["role"], r["rollout"], r["answer"] if r["call_status"] == "ok" else None,
             "truncated" if r["call_status"] == "truncated" else "infra_error")
            for r in rollouts.iter_rows(named=True)]  # fmt: skip
    if controls:
        for item in by_id.values():
            jobs.append((item, "control_ref", 0, item["reference_answer"], "ok"))
            jobs.append((item, "control_null", 0, non_answer, "ok"))
    return jobs


async def judge(
    items: pl.DataFrame,
    rollouts: pl.DataFrame,
    client: ChatClient,
    spec: RoleModel,
    *,
    controls: bool,
    non_answer: str = "I don't know.",
    on_done: Callable[[], None] | None = None,
    protocol: Protocol = "per_answer",
    reference: bool = False,
) -> pl.DataFrame:
    """Grade every rollout (and, if ``controls``, both controls per item) under ``protocol``;
    each row records the judge's model and prompts' hash."""
    prompt_hash = prompts.role_hashes()["judge"]

    async def run(job: tuple[dict, str, int, str | None, str]) -> dict:
        item, role, rollout, answer, failed_status = job
        key = {
            "candidate_id": item["candidate_id"],
            "role": role,
            "rollout": rollout,
            "judge_model": client.model,
            "prompt_hash": prompt_hash,
        }
        if answer is None:
            cols = FAILED | {"call_status": failed_status}
        else:
            cols = await grade(item, answer, client, spec, protocol, reference)
        if on_done:
            on_done()
        return key | cols

    jobs = _answers(items, rollouts, non_answer, controls)
    rows = await map_bounded(run, jobs, window_for(client.max_concurrency))
    frame = (
        pl.DataFrame(rows, schema=schemas.JUDGMENTS) if rows else schemas.empty(schemas.JUDGMENTS)
    )
    return schemas.check(frame, schemas.JUDGMENTS, "judgments")


@dataclass(frozen=True)
class Grader:
    """How the judge stage grades, as values: the judge's client and spec and the non-answer
    control, or (``verifiable``) exact match of the final answer, with no model."""

    client: ChatClient
    spec: RoleModel
    non_answer: str
    verifiable: bool = False
    tolerance: float = 0.0  # verifiable: relative tolerance of numbers (gate.answer_tolerance)
    protocol: Protocol = "per_answer"  # loop.judge_protocol
    reference: bool = False  # loop.judge_reference


@task(name="judge", cache_policy=NO_CACHE)
async def judge_task(
    challenges: pl.DataFrame,
    rollouts: pl.DataFrame,
    round_no: int,
    grader: Grader,
    target: Path,
    reporter: Reporter,
    *,
    controls: bool,
) -> pl.DataFrame:
    """Prefect wrapper: grade ``rollouts`` of the challenges that passed quality. Verifiable mode
    scores them at once (nothing to resume); otherwise resume from ``target`` or run
    :func:`judge` and write it."""
    items = challenges.filter(pl.col("qv_passed"))
    if grader.verifiable:
        return score_verifiable(items, rollouts, grader.tolerance)
    total = rollouts.height + (2 * items.height if controls else 0)
    solver = rollouts["role"][0] if rollouts.height else ""
    with reporter.stage(f"round {round_no}: judge {solver}", total) as done:
        return await persisted(
            target,
            schemas.JUDGMENTS,
            "judgments",
            lambda: judge(
                items,
                rollouts,
                grader.client,
                grader.spec,
                controls=controls,
                non_answer=grader.non_answer,
                on_done=done,
                protocol=grader.protocol,
                reference=grader.reference,
            ),
        )


# --- verifiable mode: the stated final answer against the reference's, no judge model -----


def score_verifiable(items: pl.DataFrame, rollouts: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """Verifiable mode: a rollout scores 1 when the final answer it states is equivalent to the
    reference's (:mod:`tasks.verifiable`), else 0; the answer it states is kept in ``extracted``."""
    keys = {
        r["candidate_id"]: reference_answer(r["reference_answer"])
        for r in items.iter_rows(named=True)
    }
    rows = []
    for r in rollouts.iter_rows(named=True):
        ok = r["call_status"] == "ok"
        failed = "truncated" if r["call_status"] == "truncated" else "infra_error"
        answer = extract(r["answer"]) if ok else None
        right = ok and equivalent(answer, keys[r["candidate_id"]], tolerance)
        rows.append({"candidate_id": r["candidate_id"], "role": r["role"], "rollout": r["rollout"],
                     "criterion_met": [right] if ok else [], "criterion_p_yes": [None] if ok else [],
                     "score": float(right) if ok else None, "p_score": None, "judge_model": "exact-match",
                     "call_status": "ok" if ok else failed, "finish_reasons": [], "extracted": answer})  # fmt: skip
    frame = (
        pl.DataFrame(rows, schema=schemas.JUDGMENTS) if rows else schemas.empty(schemas.JUDGMENTS)
    )
    return schemas.check(frame, schemas.JUDGMENTS, "judgments")
