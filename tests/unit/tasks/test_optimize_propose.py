"""The analyzer and the editor against the scripted loopback server: a proposal from the two
replies, and a failed or unusable call as a proposal with its failure (never a crash)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from autodata.llm.client import OpenAIChatClient
from autodata.settings import Models, Settings
from autodata.testing.replies import Reply
from autodata.testing.scripted_server import ScriptedServer
from tasks.optimize_propose import propose
from tasks.optimize_surface import surface_of

SEED = surface_of(Settings())
EDITS = {"rationale": "too easy", "edits": [{"target": "challenger_system", "action": "append",
                                            "new": "Ask for three steps."}]}  # fmt: skip


def responder(analysis: str = "Items were too easy.", edits: Any = EDITS) -> Callable[[dict[str, Any]], Any]:  # fmt: skip
    def answer(body: dict[str, Any]) -> Any:
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
        return edits if schema == "EditorOut" else analysis

    return answer


@asynccontextmanager
async def clients_on(server: ScriptedServer) -> AsyncIterator[dict[str, OpenAIChatClient]]:
    clients = {role: OpenAIChatClient(server.base_url, "scripted", max_retries=0, max_resamples=0,
                                      backoff_s=0.001, role=role) for role in ("analyzer", "editor")}  # fmt: skip
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()


async def test_a_proposal_is_the_analysis_and_the_editor_edits(scripted: Callable[..., ScriptedServer]) -> None:  # fmt: skip
    server = scripted(responder())
    async with clients_on(server) as clients:
        out = await propose(
            clients, Models(), "decisions: too_easy 4 (of 4 items)", SEED, iteration=3
        )
    assert (out.analysis, out.rationale, out.failure) == ("Items were too easy.", "too easy", None)
    assert [(e.target, e.action, e.new) for e in out.edits] == [("challenger_system", "append", "Ask for three steps.")]  # fmt: skip
    analyzer, editor = (r.body for r in server.requests)
    assert "decisions: too_easy 4" in analyzer["messages"][-1]["content"]
    assert "Items were too easy." in editor["messages"][-1]["content"]
    assert (analyzer["seed"], editor["seed"]) == (
        Models().analyzer.seed + 3,
        Models().editor.seed + 3,
    )


async def test_unusable_replies_are_a_failed_proposal(scripted: Callable[..., ScriptedServer]) -> None:  # fmt: skip
    server = scripted(
        responder(edits={"edits": [{"target": "x", "action": "rewrite", "new": "y"}]})
    )
    async with clients_on(server) as clients:
        out = await propose(clients, Models(), "digest", SEED, iteration=1)
    assert out.analysis and not out.edits
    assert "editor: unusable JSON" in (out.failure or "")
    server = scripted(lambda body: Reply(status=503))
    async with clients_on(server) as clients:
        out = await propose(clients, Models(), "digest", SEED, iteration=1)
    assert out.failure and "503" in out.failure and not out.analysis
    server = scripted(responder(analysis="   "))
    async with clients_on(server) as clients:
        out = await propose(clients, Models(), "digest", SEED, iteration=1)
    assert out.failure and out.failure.startswith("analyzer:") and "empty" in out.failure
