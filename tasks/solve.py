"""Stage: solve. A solver answers ``context + question`` in k rollouts.

Solvers never see the reference answer or the rubric; a *privileged* solver (the strong role in
the embedded default) also sees the source document (DESIGN §1, "privileged information").
Input: challenges (those that passed quality) + sources (their text). Output:
``schemas.ROLLOUTS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from autodata import prompts, schemas
from autodata.aio import map_bounded, window_for
from autodata.errors import CallError
from autodata.llm.client import ChatClient, ChatRequest
from autodata.progress import Reporter
from autodata.settings import RoleModel
from autodata.stagefile import persisted


def solver_request(
    item: dict, spec: RoleModel, rollout: int, final_answer: bool = False
) -> ChatRequest:
    """The request for one rollout; ``item`` has context, question and, if privileged, text.
    ``final_answer`` (verifiable mode) asks for a closing ``Final answer: …`` line."""
    source = ""
    if spec.privileged and item.get("text"):
        source = prompts.render("solver_source", source=prompts.fence(item["text"])) + "\n\n"
    user = prompts.render(
        "solver_user",
        source=source,
        context=prompts.fence(item["context"]),
        question=prompts.fence(item["question"]),
    )
    system = prompts.render("solver_system")
    if final_answer:
        system += "\n\n" + prompts.render("solver_final_answer")
    return ChatRequest.of(
        system,
        user,
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_tokens=spec.max_tokens,
        seed=spec.seed + rollout,
        retry_max_tokens=spec.budget_retry,
    )


async def _rollout(
    item: dict, rollout: int, *, role: str, client: ChatClient, spec: RoleModel, prompt_hash: str,
    final_answer: bool = False,
) -> dict:  # fmt: skip
    row = {
        "candidate_id": item["candidate_id"],
        "role": role,
        "rollout": rollout,
        "model": client.model,
        "prompt_hash": prompt_hash,
    }
    try:
        result = await client.chat(solver_request(item, spec, rollout, final_answer))
    except CallError as exc:
        return row | _failed(exc)
    return row | {
        "answer": result.texts[0],
        "tokens_in": result.tokens_in,
        "tokens_out": result.tokens_out,
        "call_status": "truncated" if result.truncated else "ok",
        "error": _cut(role, result.max_tokens) if result.truncated else "",
        "finish_reason": result.finish_reasons[0],
        "reasoning": result.reasoning[0],
    }


def _failed(exc: CallError) -> dict:
    if exc.kind == "truncated":
        status = "truncated"
    else:
        status = "infra_error" if exc.is_infra else "invalid_output"
    return {"answer": None, "tokens_in": 0, "tokens_out": 0, "call_status": status,
            "error": str(exc), "finish_reason": "length" if status == "truncated" else "",
            "reasoning": ""}  # fmt: skip


def _cut(role: str, max_tokens: int) -> str:
    """Why a cut answer is never graded, and the setting to raise."""
    return (
        f"{role} answer cut at max_tokens={max_tokens} (after one retry with a larger budget); "
        f"raise models.{role}.max_tokens or models.{role}.retry_max_tokens"
    )


async def solve(
    items: pl.DataFrame,
    role: str,
    k: int,
    client: ChatClient,
    spec: RoleModel,
    on_done: Callable[[], None] | None = None,
    *,
    plan: Mapping[str, tuple[int, int]] | None = None,
    final_answer: bool = False,
) -> pl.DataFrame:
    """``k`` rollouts of ``role`` for every item (columns: candidate_id, context, question[, text]);
    each row records the model and the solver prompts' hash that made it. ``plan``: instead, the
    rollouts ``range(start, stop)`` of each planned candidate (the sequential gate's batches,
    the fresh re-scoring); ``final_answer``: ask for a ``Final answer:`` line (verifiable mode)."""
    prompt_hash = prompts.role_hashes()[role]

    async def run(job: tuple[dict, int]) -> dict:
        row = await _rollout(*job, role=role, client=client, spec=spec, prompt_hash=prompt_hash, final_answer=final_answer)  # fmt: skip
        if on_done:
            on_done()
        return row

    def indices(cid: str) -> range:
        return range(k) if plan is None else range(*plan.get(cid, (0, 0)))

    jobs = [
        (item, r) for item in items.iter_rows(named=True) for r in indices(item["candidate_id"])
    ]
    rows = await map_bounded(run, jobs, window_for(client.max_concurrency))
    frame = pl.DataFrame(rows, schema=schemas.ROLLOUTS) if rows else schemas.empty(schemas.ROLLOUTS)
    return schemas.check(frame, schemas.ROLLOUTS, "rollouts")


def solver_items(challenges: pl.DataFrame, sources: pl.DataFrame) -> pl.DataFrame:
    """The items a solver answers: the challenges that passed quality, each with its source's
    ``text`` (only a privileged solver reads it)."""
    passed = challenges.filter(pl.col("qv_passed"))
    return passed.join(sources.select("source_id", "text"), on="source_id")


@dataclass(frozen=True)
class Solver:
    """One solver role as values: ``role`` (weak|strong), ``k`` rollouts, its client and spec;
    ``final_answer``: ask for a ``Final answer:`` line (verifiable mode)."""

    role: str
    k: int
    client: ChatClient
    spec: RoleModel
    final_answer: bool = False


@task(name="solve", cache_policy=NO_CACHE)
async def solve_task(
    challenges: pl.DataFrame,
    sources: pl.DataFrame,
    round_no: int,
    solver: Solver,
    target: Path,
    reporter: Reporter,
    *,
    plan: Mapping[str, tuple[int, int]] | None = None,
    fresh: bool = False,
) -> pl.DataFrame:
    """Prefect wrapper: resume from ``target`` or run :func:`solve` on the challenges that passed
    quality (:func:`solver_items`) and write it. ``plan``: only those rollouts (see
    :func:`solve`); ``fresh``: the rows are the fresh re-scoring (role ``fresh_<role>``)."""
    items, role, k = solver_items(challenges, sources), solver.role, solver.k
    total = items.height * k if plan is None else sum(stop - start for start, stop in plan.values())
    label = schemas.FRESH_ROLES[role] if fresh else role

    async def compute() -> pl.DataFrame:
        rows = await solve(items, role, k, solver.client, solver.spec, done, plan=plan,
                           final_answer=solver.final_answer)  # fmt: skip
        return rows.with_columns(role=pl.lit(label)) if fresh else rows

    with reporter.stage(f"round {round_no}: solve {label}", total) as done:
        return await persisted(target, schemas.ROLLOUTS, "rollouts", compute)
