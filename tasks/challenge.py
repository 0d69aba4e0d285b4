"""Stage: challenge + verify. The Challenger writes an item per open source; the quality
verifier (code checks, then an LLM check) rejects leaks, malformed rubrics and vague questions.

Input: ``sources`` rows still open, the ``rounds`` history. Output: ``schemas.CHALLENGES``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, field_validator

from autodata import prompts, schemas
from autodata.aio import map_bounded, window_for
from autodata.errors import CallError
from autodata.llm.client import ChatClient, ChatRequest
from autodata.progress import Reporter
from autodata.settings import RoleModel
from autodata.stagefile import persisted
from tasks.verifiable import check_known_answers

Weight = Literal[1, 2, 3, 4, 5, 6, 7]
PACKAGED: Mapping[str, str] = {}  # no replacement templates: the packaged prompts


class Criterion(BaseModel):
    criterion: str = Field(min_length=3, max_length=200)
    weight: Weight


class ChallengeOut(BaseModel):
    """The Challenger's JSON (DESIGN §1 step 1). Bounded so guided decoding terminates."""

    context: str = Field(min_length=1, max_length=1500)
    question: str = Field(min_length=1, max_length=500)
    reference_answer: str = Field(min_length=1, max_length=800)
    question_type: str = Field(max_length=40)
    reasoning_skills: list[str] = Field(max_length=4)
    rubric: list[Criterion] = Field(min_length=1, max_length=6)

    @field_validator("question_type", mode="before")
    @classmethod
    def _clip_type(cls, value: object) -> object:
        """Metadata, not the item: an over-long label is clipped, never a reason to drop it."""
        return value[:40] if isinstance(value, str) else value

    @field_validator("reasoning_skills", mode="before")
    @classmethod
    def _clip_skills(cls, value: object) -> object:
        return value[:4] if isinstance(value, list) else value


class VerifierOut(BaseModel):
    leak: bool
    clear: bool
    rubric_ok: bool
    reason: str = Field(max_length=200)


def candidate_id(source_id: str, round_no: int, recipe_hash: str) -> str:
    """Stable id of the item written for ``source_id`` in ``round_no`` under a recipe."""
    return hashlib.sha256(f"{source_id}|{round_no}|{recipe_hash}".encode()).hexdigest()[:16]


def feedback_by_source(
    history: pl.DataFrame, texts: Mapping[str, str] = PACKAGED
) -> dict[str, str]:
    """Typed feedback (DESIGN §1 step 8) per source from earlier rounds, in one pass; ``texts``:
    the recipe's replacement templates (``settings.prompts``)."""
    if history.is_empty():
        return {}
    lines = (
        history.filter(pl.col("feedback") != "")
        .sort("round")
        .group_by("source_id", maintain_order=True)
        .agg(pl.col("feedback"))
    )
    return {
        source_id: "\n"
        + prompts.render_with(texts, "feedback", attempts="\n".join(f"- {x}" for x in items))
        + "\n"
        for source_id, items in lines.iter_rows()
    }


def feedback_text(history: pl.DataFrame, source_id: str) -> str:
    """The feedback block for one source; '' on its first round."""
    return feedback_by_source(history).get(source_id, "")


def challenger_request(source: dict, feedback: str, spec: RoleModel, round_no: int,
                       texts: Mapping[str, str] = PACKAGED) -> ChatRequest:  # fmt: skip
    """The Challenger's messages: system, one worked example as chat turns, the source."""
    user = prompts.render_with(
        texts,
        "challenger_user",
        domain=source["domain"],
        source=prompts.fence(source["text"]),
        feedback=feedback,
    )
    messages = (
        ("system", prompts.render_with(texts, "challenger_system")),
        ("user", prompts.render_with(texts, "challenger_example_user")),
        ("assistant", prompts.render_with(texts, "challenger_example_assistant")),
        ("user", user),
    )
    return ChatRequest(messages=messages, temperature=spec.temperature, top_p=spec.top_p,
                       max_tokens=spec.max_tokens, seed=spec.seed + round_no, response_model=ChallengeOut)  # fmt: skip


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def _n_words(text: str) -> int:
    """Words in ``text``, each CJK character (Han, kana, Hangul syllable) counting as one."""
    return len(_CJK_CHAR.findall(text)) + len(_CJK_CHAR.sub(" ", text).split())


RESTATE_WORDS = 12  # a run this long shared with the reference answer is a copied sentence


def restating_criterion(criteria: list[str], answer: str) -> int | None:
    """The 1-based criterion that restates the reference answer ``answer`` (all normalised text),
    or None: one holding the whole answer (of 4+ words), or a run of :data:`RESTATE_WORDS`
    consecutive words of it. The judge sees the rubric but must never see the reference."""
    words = answer.split()
    runs = {" ".join(words[i : i + RESTATE_WORDS]) for i in range(len(words) - RESTATE_WORDS + 1)}
    for i, criterion in enumerate(criteria, 1):
        padded = f" {criterion} "
        if (len(words) >= 4 and f" {answer} " in padded) or any(f" {r} " in padded for r in runs):
            return i
    return None


def static_quality(item: ChallengeOut) -> str | None:
    """Code checks before any LLM verdict. Returns the rejection reason, or None.

    A question is vague when it has fewer than 15 characters *and* fewer than 4 words, so the
    rule holds for scripts without spaces ("买方能否解除合同？" is 8 words).
    """
    answer, context = _norm(item.reference_answer), _norm(item.context)
    question = _norm(item.question)
    if len(question) < 15 and _n_words(question) < 4:
        return "vague question: fewer than 15 characters and 4 words (a CJK character is a word)"
    if len(answer) >= 12 and answer in context:
        return "context leak: the reference answer appears verbatim in the context"
    criteria = [_norm(c.criterion) for c in item.rubric]
    if len(set(criteria)) < len(criteria):
        return "malformed rubric: duplicate criteria"
    if (restating := restating_criterion(criteria, answer)) is not None:
        return f"rubric leak: criterion {restating} restates the reference answer (the judge sees the rubric)"
    if question == answer:
        return "malformed item: the answer repeats the question"
    return None


def verifier_request(
    item: ChallengeOut, spec: RoleModel, texts: Mapping[str, str] = PACKAGED
) -> ChatRequest:
    """The quality verifier's request for one item."""
    rubric = "\n".join(f"- ({c.weight}) {c.criterion}" for c in item.rubric)
    user = prompts.render_with(texts, "verifier_user", context=prompts.fence(item.context), question=prompts.fence(item.question),
                          reference_answer=prompts.fence(item.reference_answer), rubric=prompts.fence(rubric))  # fmt: skip
    return ChatRequest.of(prompts.render_with(texts, "verifier_system"), user, temperature=spec.temperature,
                          max_tokens=spec.max_tokens, seed=spec.seed, response_model=VerifierOut)  # fmt: skip


def verdict_reason(verdict: VerifierOut) -> str | None:
    """Rejection reason from the verifier's flags, or None when it passes."""
    if verdict.leak:
        return f"context leak (verifier): {verdict.reason}"
    if not verdict.clear:
        return f"vague question (verifier): {verdict.reason}"
    if not verdict.rubric_ok:
        return f"rubric does not cover the answer (verifier): {verdict.reason}"
    return None


async def _one(source: dict, feedback: str, round_no: int, roles: Roles) -> dict:
    row = _blank_row(source, round_no, roles)
    request = challenger_request(source, feedback, roles.challenger_spec, round_no, roles.texts)
    try:
        result = await roles.challenger.chat(request)
    except CallError as exc:
        return row | _failure(exc, "challenger")
    item = result.parsed[0]
    assert isinstance(item, ChallengeOut)
    row["finish_reason"] = result.finish_reasons[0]
    row |= _item_columns(item)
    reason = static_quality(item)
    if reason is None:
        try:
            verdict = (
                await roles.verifier.chat(verifier_request(item, roles.verifier_spec, roles.texts))
            ).parsed[0]
        except CallError as exc:
            return row | _failure(exc, "verifier")
        assert isinstance(verdict, VerifierOut)
        reason = verdict_reason(verdict)
    return row | {"qv_passed": reason is None, "qv_reason": reason or "", "call_status": "ok"}


def _failure(exc: CallError, who: str) -> dict:
    if exc.kind == "truncated" and who == "challenger":
        return {"qv_passed": False, "qv_reason": f"challenger reply cut: {exc}",
                "call_status": "infra_error", "finish_reason": "length"}  # fmt: skip
    if exc.is_infra:
        return {
            "qv_passed": False,
            "qv_reason": f"{who} call failed: {exc}",
            "call_status": "infra_error",
        }
    return {"qv_passed": False, "qv_reason": f"{who} output invalid: {exc}", "call_status": "ok"}


def _item_columns(item: ChallengeOut) -> dict:
    return {
        "context": item.context,
        "question": item.question,
        "reference_answer": item.reference_answer,
        "question_type": item.question_type,
        "reasoning_skills": item.reasoning_skills,
        "rubric": [c.model_dump() for c in item.rubric],
    }


def _blank_row(source: dict, round_no: int, roles: Roles) -> dict:
    return {
        "candidate_id": candidate_id(source["source_id"], round_no, roles.recipe_hash),
        "source_id": source["source_id"],
        "round": round_no,
        "context": None, "question": None, "reference_answer": None, "question_type": None,
        "reasoning_skills": [], "rubric": [],
        "finish_reason": "",
        "recipe_hash": roles.recipe_hash,
        "challenger_model": roles.challenger.model,
        "challenger_prompt_hash": roles.prompt_hashes["challenger"],
        "verifier_model": roles.verifier.model,
        "verifier_prompt_hash": roles.prompt_hashes["verifier"],
    }  # fmt: skip


class Roles:
    """The clients, sampling specs and replacement templates (``settings.prompts``) the challenge
    stage uses (values, no settings file)."""

    def __init__(self, challenger: ChatClient, challenger_spec: RoleModel, verifier: ChatClient,
                 verifier_spec: RoleModel, recipe_hash: str, texts: Mapping[str, str] = PACKAGED,
                 answer_tolerance: float | None = None) -> None:  # fmt: skip
        self.challenger, self.challenger_spec = challenger, challenger_spec
        self.verifier, self.verifier_spec = verifier, verifier_spec
        self.recipe_hash, self.texts = recipe_hash, dict(texts)
        self.prompt_hashes = prompts.role_hashes(self.texts)  # what each row records
        # verifiable mode: items end with a checkable final answer, held to a source's known one
        self.answer_tolerance = answer_tolerance


async def challenge(
    sources: pl.DataFrame,
    history: pl.DataFrame,
    round_no: int,
    roles: Roles,
    on_done: Callable[[], None] | None = None,
) -> pl.DataFrame:
    """Write and verify one item per source in ``sources`` for ``round_no``."""

    feedback = feedback_by_source(history, roles.texts)
    verifiable = roles.answer_tolerance is not None
    ask = "\n" + prompts.render_with(roles.texts, "challenger_verifiable") if verifiable else ""

    async def run(source: dict) -> dict:
        row = await _one(source, feedback.get(source["source_id"], "") + ask, round_no, roles)
        if on_done:
            on_done()
        return row

    window = window_for(roles.challenger.max_concurrency, roles.verifier.max_concurrency)
    rows = await map_bounded(run, list(sources.iter_rows(named=True)), window)
    frame = (
        pl.DataFrame(rows, schema=schemas.CHALLENGES) if rows else schemas.empty(schemas.CHALLENGES)
    )
    if roles.answer_tolerance is not None:
        frame = check_known_answers(frame, sources, roles.answer_tolerance)
    return schemas.check(frame, schemas.CHALLENGES, "challenges")


@task(name="challenge", cache_policy=NO_CACHE)
async def challenge_task(
    sources: pl.DataFrame,
    history: pl.DataFrame,
    round_no: int,
    roles: Roles,
    target: Path,
    reporter: Reporter,
) -> pl.DataFrame:
    """Prefect wrapper: resume from ``target`` or run :func:`challenge` and write it."""
    with reporter.stage(f"round {round_no}: challenge", sources.height) as done:
        return await persisted(
            target,
            schemas.CHALLENGES,
            "challenges",
            lambda: challenge(sources, history, round_no, roles, done),
        )
