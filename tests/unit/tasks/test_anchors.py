"""Judge drift anchors: the packaged set, a bad anchor file, grading against the scripted
server, and the one-line stop when the judge agrees with too few anchors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autodata.errors import ConfigError, JudgeDrift
from autodata.llm.client import OpenAIChatClient
from autodata.settings import RoleModel
from autodata.testing.replies import Reply
from autodata.testing.roles import LoopScript, judge_reply, user_text
from autodata.testing.scripted_server import ScriptedServer
from tasks.anchors import agreement, check_drift, grade_anchors, load_anchors
from tasks.judge import Protocol

Scripted = Callable[..., ScriptedServer]
ANCHORS = load_anchors(None)


def faithful(body: dict[str, Any]) -> Reply | dict[str, Any]:
    """A judge that gives every anchor its expected verdict, under either protocol."""
    text = user_text(body)
    for anchor in ANCHORS:
        if anchor["answer"] in text and anchor["criterion"] in text:
            return judge_reply(body, lambda _answer, _i, yes=anchor["expected"]: yes)
    return judge_reply(body, lambda _answer, _i: False)


async def _grade(server: ScriptedServer, protocol: Protocol = "per_answer") -> Any:
    spec = RoleModel(backend="openai", base_url=server.base_url, model="scripted", temperature=0.0)
    client = OpenAIChatClient(server.base_url, "scripted", max_retries=0, backoff_s=0.001, role="judge")  # fmt: skip
    try:
        return await grade_anchors(ANCHORS, client, spec, protocol)
    finally:
        await client.aclose()


def test_the_packaged_set_is_small_balanced_and_clear() -> None:
    assert len(ANCHORS) == 12 and sum(a["expected"] for a in ANCHORS) == 6
    assert len({a["id"] for a in ANCHORS}) == 12


def test_a_bad_anchor_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "anchors.jsonl"
    good = json.dumps(ANCHORS[0])
    path.write_text(good + "\n" + json.dumps({**ANCHORS[1], "expected": "yes"}) + "\n")
    with pytest.raises(ConfigError, match=r"anchors.jsonl: line 2: .*loop.judge_anchors"):
        load_anchors(path)
    with pytest.raises(ConfigError, match="cannot read judge anchors"):
        load_anchors(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("protocol", ["per_answer", "per_criterion"])
async def test_a_faithful_judge_agrees_on_every_anchor(
    scripted: Scripted, protocol: Protocol
) -> None:
    server = scripted(faithful)
    grades = await _grade(server, protocol)
    assert agreement(grades) == (12, 12)
    # asked as the run asks: one schema-guided call per anchor, or one word with logprobs
    schema = [
        "json_schema" in (b.get("response_format") or {}) for b in (r.body for r in server.requests)
    ]
    assert schema == [protocol == "per_answer"] * 12
    assert grades["p_yes"].is_null().all() == (protocol == "per_answer")
    assert (
        check_drift(grades, 0.9, "scripted") == "judge anchors: scripted agreed on 12 of 12 (100%)"
    )


async def test_a_judge_that_says_yes_to_everything_stops_the_run(scripted: Scripted) -> None:
    grades = await _grade(scripted(LoopScript()))  # yes to all but "I don't know."
    assert agreement(grades) == (7, 12)
    with pytest.raises(JudgeDrift, match=r"agreed on 7 of 12 \(58%\), below loop.anchor_min_agreement 80% \(wrong on pens-wrong"):  # fmt: skip
        check_drift(grades, 0.8, "scripted")
    assert check_drift(grades, 0.5, "scripted").endswith("(58%)")


async def test_failed_calls_are_not_counted(scripted: Scripted) -> None:
    grades = await _grade(scripted(lambda body: Reply(status=503, text="overloaded")))
    assert agreement(grades) == (0, 0) and set(grades["call_status"]) == {"infra_error"}
    assert check_drift(grades, 0.9, "scripted") == "judge anchors: none graded (12 calls failed)"
