"""Stage solve: what each solver is shown (DESIGN §1 step 3, "privileged information"), k seeded
rollouts, and failed calls as rows — against the scripted loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from autodata import schemas
from autodata.llm.client import CallStats, ChatResult, OpenAIChatClient
from autodata.settings import RoleModel
from autodata.testing.replies import Reply
from autodata.testing.roles import RUBRIC, LoopScript, role_of, user_text
from autodata.testing.scripted_server import ScriptedServer
from tasks.solve import solve, solver_request

WEAK = RoleModel(backend="openai", base_url="http://unused/v1", model="scripted", seed=10)
STRONG = WEAK.model_copy(update={"privileged": True, "seed": 20})
REFERENCE = "REFERENCE-9Z: the lease expires before the clock drift bound."
SOURCE_TEXT = "SOURCE-TEXT-4K: leases are safe only while clocks drift less than the margin."
Scripted = Callable[..., ScriptedServer]


def item(cid: str = "a") -> dict[str, Any]:
    """A candidate as the loop hands it to the solvers: the whole challenge row + source text."""
    return {
        "candidate_id": cid,
        "source_id": "src",
        "context": f"Context {cid}: two nodes hold a lease.",
        "question": f"Question {cid}: can both act as leader?",
        "reference_answer": REFERENCE,
        "rubric": RUBRIC,
        "qv_passed": True,
        "text": SOURCE_TEXT,
    }


def prompt(body: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in body["messages"])


def assert_no_answer_key(text: str) -> None:
    assert "REFERENCE-9Z" not in text
    assert not any(c["criterion"] in text for c in RUBRIC)


async def run_solve(
    server: ScriptedServer, role: str, spec: RoleModel, k: int = 3, ids: str = "a"
) -> pl.DataFrame:
    client = OpenAIChatClient(
        server.base_url, "scripted", max_retries=1, backoff_s=0.001, role=role
    )
    try:
        return await solve(pl.DataFrame([item(c) for c in ids]), role, k, client, spec)
    finally:
        await client.aclose()


@pytest.mark.parametrize(("spec", "sees_source"), [(WEAK, False), (STRONG, True)])
def test_solver_request_shows_context_and_question_only(spec: RoleModel, sees_source: bool) -> None:
    request = solver_request(item(), spec, rollout=2)
    text = "\n".join(content for _, content in request.messages)
    assert "Context a: two nodes hold a lease." in text and "Question a: can both act" in text
    assert_no_answer_key(text)
    assert (SOURCE_TEXT in text) is sees_source
    assert request.seed == spec.seed + 2 and request.response_model is None


def test_a_privileged_solver_without_source_text_still_works() -> None:
    request = solver_request(item() | {"text": None}, STRONG, rollout=0)
    assert "Background document" not in request.messages[-1][1]


async def test_weak_rollouts_never_see_the_answer_key_or_the_source(scripted: Scripted) -> None:
    server = scripted(LoopScript())
    frame = await run_solve(server, "weak", WEAK, k=3, ids="ab")
    assert frame.schema == schemas.ROLLOUTS
    assert frame.height == 6 and sorted(frame["rollout"].to_list()) == [0, 0, 1, 1, 2, 2]
    assert set(frame["call_status"]) == {"ok"} and set(frame["role"]) == {"weak"}
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 6 and {role_of(b) for b in bodies} == {"weak"}
    for body in bodies:
        assert_no_answer_key(prompt(body))
        assert SOURCE_TEXT not in prompt(body)
        assert "response_format" not in body
    # k rollouts per item, each with its own seed
    seeds = {
        cid: sorted(b["seed"] for b in bodies if f"Question {cid}" in user_text(b)) for cid in "ab"
    }
    assert seeds == {"a": [10, 11, 12], "b": [10, 11, 12]}
    answers = frame.filter(pl.col("candidate_id") == "a").sort("rollout")["answer"].to_list()
    assert answers == [
        f"WEAK-ANSWER seed={s}: the conclusion follows from the rule." for s in (10, 11, 12)
    ]
    assert (frame["tokens_in"] > 0).all() and (frame["tokens_out"] > 0).all()


async def test_the_privileged_strong_solver_sees_the_source_but_not_the_answer_key(
    scripted: Scripted,
) -> None:
    server = scripted(LoopScript())
    frame = await run_solve(server, "strong", STRONG, k=2)
    assert frame["answer"].str.starts_with("STRONG-ANSWER").all()
    for r in server.requests:
        assert SOURCE_TEXT in user_text(r.body)
        assert_no_answer_key(prompt(r.body))
    assert sorted(r.body["seed"] for r in server.requests) == [20, 21]


async def test_a_failed_solver_call_is_an_infra_row_not_a_crash(scripted: Scripted) -> None:
    def responder(body: dict[str, Any]) -> Reply | str:
        return Reply(status=500, text="GPU fell over") if body["seed"] == 11 else "an answer"

    server = scripted(responder)
    frame = (await run_solve(server, "weak", WEAK, k=3)).sort("rollout")
    assert frame["call_status"].to_list() == ["ok", "infra_error", "ok"]
    failed = frame.row(1, named=True)
    assert failed["answer"] is None and (failed["tokens_in"], failed["tokens_out"]) == (0, 0)
    assert "HTTP 500" in failed["error"] and "after 2 tries" in failed["error"]
    assert frame["answer"].to_list()[::2] == ["an answer", "an answer"]
    assert server.count(lambda r: r.body.get("seed") == 11) == 2  # max_retries + 1


async def test_solving_nothing_makes_no_call(scripted: Scripted) -> None:
    server = scripted()
    client = OpenAIChatClient(server.base_url, "scripted", role="weak")
    try:
        frame = await solve(
            pl.DataFrame(schema={"candidate_id": pl.String}), "weak", 3, client, WEAK
        )
    finally:
        await client.aclose()
    assert frame.is_empty() and frame.schema == schemas.ROLLOUTS and server.count() == 0


class _CountingClient:
    """A ChatClient without a slot limit of its own that counts the jobs waiting on it at once."""

    model, max_concurrency = "counting", 2

    def __init__(self) -> None:
        self.stats, self.waiting, self.peak = CallStats(), 0, 0

    async def chat(self, request: Any) -> Any:
        self.waiting += 1
        self.peak = max(self.peak, self.waiting)
        await asyncio.sleep(0.001)
        self.waiting -= 1
        return ChatResult(texts=["an answer"])


async def test_a_stage_keeps_a_bounded_window_of_jobs_not_one_per_rollout() -> None:
    client = _CountingClient()
    items = pl.DataFrame([item(f"c{i}") for i in range(40)])
    rollouts = await solve(items, "weak", 3, client, WEAK)  # type: ignore[arg-type]
    assert rollouts.height == 120 and set(rollouts["call_status"]) == {"ok"}
    assert client.peak == 8  # window_for(2): not 120 coroutines at once
