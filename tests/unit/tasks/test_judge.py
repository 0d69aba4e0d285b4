"""Stage judge: yes/no verdicts per criterion, P(yes) from logprobs, the weighted score, and the
two controls per candidate, against the scripted loopback server (DESIGN §1 step 4)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from autodata import schemas
from autodata.llm.client import ChatResult, OpenAIChatClient
from autodata.settings import RoleModel
from autodata.testing.replies import Reply
from autodata.testing.roles import RUBRIC, LoopScript, role_of, user_text
from autodata.testing.scripted_server import ScriptedServer
from tasks.accept import control_gap, summarize
from tasks.judge import Protocol, judge, rubric_model, score_verifiable, verdict, weighted

SPEC = RoleModel(backend="openai", base_url="http://unused/v1", model="scripted", temperature=0.0)
REFERENCE = "REFERENCE-7Q: notice was served inside the window, so termination stands."
NON_ANSWER = "I don't know."
Scripted = Callable[..., ScriptedServer]


def items(*ids: str) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "candidate_id": cid,
                "context": f"Context of {cid}.",
                "question": f"Question of {cid}?",
                "reference_answer": REFERENCE,
                "rubric": RUBRIC,
            }
            for cid in ids
        ]
    )


def rollouts(
    ids: list[str], roles: dict[str, int], failed: frozenset[tuple[str, str, int]] = frozenset()
) -> pl.DataFrame:
    rows = []
    for cid in ids:
        for role, k in roles.items():
            for r in range(k):
                bad = (cid, role, r) in failed
                rows.append(
                    {
                        "candidate_id": cid,
                        "role": role,
                        "rollout": r,
                        "answer": None if bad else f"{role.upper()}-ANSWER {cid}/{r}: it follows.",
                        "tokens_in": 1,
                        "tokens_out": 1,
                        "model": "scripted",
                        "call_status": "infra_error" if bad else "ok",
                        "error": "",
                    }
                )
    return pl.DataFrame(rows, schema=schemas.ROLLOUTS)


async def run_judge(
    server: ScriptedServer,
    its: pl.DataFrame,
    rolls: pl.DataFrame,
    *,
    controls: bool = True,
    protocol: Protocol = "per_criterion",
) -> pl.DataFrame:
    client = OpenAIChatClient(
        server.base_url, "scripted", max_retries=0, backoff_s=0.001, role="judge"
    )
    try:
        return await judge(
            its, rolls, client, SPEC, controls=controls, non_answer=NON_ANSWER, protocol=protocol
        )
    finally:
        await client.aclose()


def answer_of(body: dict[str, Any]) -> str:
    return user_text(body).split("<answer>", 1)[1].split("</answer>", 1)[0].strip()


# --- verdicts and scores ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "met"),
    [
        ("Yes", True),
        (" yes.", True),
        ("**yes**", True),
        ('"Yes"', True),
        ("YES, it does", True),
        ("No", False),
        (" no.", False),
        ("**No**", False),
        ("", False),
        ("Not really, yes", False),
        ("Yesterday it was", False),
    ],
)
def test_verdict_reads_the_first_word(text: str, met: bool) -> None:
    assert verdict(ChatResult(texts=[text])) == (met, None)


def test_p_yes_from_first_token_logprobs() -> None:
    lp = math.log
    assert verdict(ChatResult(texts=["yes"], top_logprobs=[{"yes": lp(0.8), "no": lp(0.2)}]))[
        1
    ] == pytest.approx(0.8)
    # case and leading spaces are folded; other tokens are ignored
    mixed = {" Yes": lp(0.3), "yes": lp(0.3), "No": lp(0.2), "Maybe": lp(0.2)}
    assert verdict(ChatResult(texts=["yes"], top_logprobs=[mixed]))[1] == pytest.approx(0.75)
    assert verdict(ChatResult(texts=["no"], top_logprobs=[{"no": lp(0.9)}]))[1] == 0.0
    assert verdict(ChatResult(texts=["yes"], top_logprobs=[{"Sure": lp(0.9)}]))[1] is None
    assert verdict(ChatResult(texts=["yes"], top_logprobs=[{}]))[1] is None


def test_weighted_score() -> None:
    weights = [c["weight"] for c in RUBRIC]  # 3, 5, 4
    assert weighted([1.0, 0.0, 1.0], weights) == pytest.approx(7 / 12)
    assert weighted([1.0, 1.0, 1.0], weights) == 1.0
    assert weighted([0.0, 0.0, 0.0], weights) == 0.0
    with pytest.raises(ValueError):
        weighted([1.0], weights)  # one verdict per criterion, never silently truncated


# --- the stage against the server ---------------------------------------------------------


async def test_judge_scores_rollouts_and_grades_controls_once_per_candidate(
    scripted: Scripted,
) -> None:
    server = scripted(LoopScript(weak_met=[True, False, True], strong_met=[True, True, False]))
    frame = await run_judge(server, items("a", "b"), rollouts(["a", "b"], {"weak": 3, "strong": 2}))
    assert frame.schema == schemas.JUDGMENTS
    per = frame.group_by("candidate_id", "role").len()
    expected = {"weak": 3, "strong": 2, "control_ref": 1, "control_null": 1}
    assert {(r["candidate_id"], r["role"]): r["len"] for r in per.iter_rows(named=True)} == {
        (cid, role): n for cid in "ab" for role, n in expected.items()
    }
    score = {role: g["score"].unique().to_list() for (role,), g in frame.group_by("role")}
    assert score == {
        "weak": [7 / 12],
        "strong": [8 / 12],
        "control_ref": [1.0],
        "control_null": [0.0],
    }
    weak = frame.filter(pl.col("role") == "weak").row(0, named=True)
    assert weak["criterion_met"] == [True, False, True]
    p_yes = 1 / (1 + math.exp(-3.0 + 0.05))  # the script's logprobs: yes -0.05, no -3.0
    assert weak["criterion_p_yes"] == pytest.approx([p_yes, 1 - p_yes, p_yes])
    assert weak["p_score"] == pytest.approx(weighted([p_yes, 1 - p_yes, p_yes], [3, 5, 4]))
    assert set(frame["call_status"]) == {"ok"} and set(frame["judge_model"]) == {"scripted"}
    # one request per criterion per graded answer, each asking for first-token logprobs
    assert server.count() == 2 * (3 + 2 + 2) * len(RUBRIC)
    assert all(r.body["logprobs"] is True and r.body["top_logprobs"] == 5 for r in server.requests)
    stats = summarize(frame)["a"]
    assert control_gap(stats) == pytest.approx(min(1.0, 2 * p_yes - 1))


async def test_the_judge_never_sees_the_reference_answer_when_grading_rollouts(
    scripted: Scripted,
) -> None:
    server = scripted()
    await run_judge(server, items("a"), rollouts(["a"], {"weak": 3, "strong": 3}))
    bodies = [r.body for r in server.requests]
    assert {role_of(b) for b in bodies} == {"judge"}
    graded = {answer_of(b) for b in bodies}
    assert REFERENCE in graded and NON_ANSWER in graded  # the two controls
    for body in bodies:
        text = "\n".join(m["content"] for m in body["messages"])
        if answer_of(body) == REFERENCE:
            assert text.count(REFERENCE) == 1  # only as the answer being graded
        else:
            assert REFERENCE not in text and "REFERENCE-7Q" not in text
        # exactly one criterion per request, and never the other criteria
        assert sum(c["criterion"] in text for c in RUBRIC) == 1


async def test_without_controls_only_rollouts_are_graded(scripted: Scripted) -> None:
    server = scripted()
    frame = await run_judge(server, items("a"), rollouts(["a"], {"strong": 3}), controls=False)
    assert frame["role"].to_list() == ["strong"] * 3
    assert all(REFERENCE not in user_text(r.body) for r in server.requests)


async def test_failed_rollouts_and_failed_judge_calls_become_infra_rows(scripted: Scripted) -> None:
    script = LoopScript()

    def responder(body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        if "STRONG-ANSWER a/1" in user_text(body) and RUBRIC[1]["criterion"] in user_text(body):
            return Reply(status=500, text="judge crashed")
        return script(body)

    server = scripted(responder)
    rolls = rollouts(["a"], {"weak": 2, "strong": 2}, failed=frozenset({("a", "weak", 0)}))
    frame = await run_judge(server, items("a"), rolls)
    status = {(r["role"], r["rollout"]): r["call_status"] for r in frame.iter_rows(named=True)}
    assert status[("weak", 0)] == "infra_error" and status[("strong", 1)] == "infra_error"
    assert status[("weak", 1)] == status[("strong", 0)] == status[("control_ref", 0)] == "ok"
    failed = frame.filter(pl.col("call_status") == "infra_error")
    assert failed["score"].to_list() == [None, None] and failed["criterion_met"].to_list() == [
        [],
        [],
    ]
    # a failed rollout is never sent to the judge
    assert not any("WEAK-ANSWER a/0" in user_text(r.body) for r in server.requests)
    assert summarize(frame)["a"]["weak_infra"] and summarize(frame)["a"]["strong_infra"]


async def test_without_logprobs_p_scores_are_null_and_the_hard_gap_counts(
    scripted: Scripted,
) -> None:
    server = scripted(LoopScript(logprobs=False))
    frame = await run_judge(server, items("a"), rollouts(["a"], {"weak": 1}))
    assert frame["p_score"].null_count() == frame.height
    assert frame.filter(pl.col("role") == "weak")["criterion_p_yes"].to_list() == [[None] * 3]
    assert control_gap(summarize(frame)["a"]) == 1.0


async def test_judge_on_nothing_is_an_empty_table(scripted: Scripted) -> None:
    server = scripted()
    frame = await run_judge(server, items().clear(), schemas.empty(schemas.ROLLOUTS))
    assert frame.is_empty() and frame.schema == schemas.JUDGMENTS and server.count() == 0


# --- verifiable mode: the stated final answer (extraction itself: test_verifiable.py) ---------

CID = "cand-1"


def test_score_verifiable_scores_each_rollout() -> None:
    items = pl.DataFrame(
        [{"candidate_id": CID, "reference_answer": "Working.\nFinal answer: 1,200"}]
    )
    answers = [("so\nFinal answer: 1200", "ok"), ("Final answer: 1,300", "ok"),
               ("it is 1200", "ok"), (None, "infra_error")]  # fmt: skip
    rollouts = pl.DataFrame(
        [
            {
                "candidate_id": CID,
                "role": "weak",
                "rollout": i,
                "answer": a,
                "tokens_in": 0,
                "tokens_out": 0,
                "model": "m",
                "call_status": s,
                "error": "",
            }
            for i, (a, s) in enumerate(answers)
        ],
        schema=schemas.ROLLOUTS,
    )
    j = score_verifiable(items, rollouts, 1e-4)
    assert j["score"].to_list() == [1.0, 0.0, 0.0, None]  # an unstated answer is not right
    assert j["extracted"].to_list() == ["1200", "1,300", None, None]
    assert j["call_status"].to_list() == ["ok", "ok", "ok", "infra_error"]
    assert j["criterion_met"].to_list() == [[True], [False], [False], []]


# --- the per-answer protocol: one schema-guided call per answer, a reason before each verdict


async def test_per_answer_grades_every_criterion_in_one_call(scripted: Scripted) -> None:
    server = scripted(LoopScript(weak_met=[True, False, True], strong_met=[True, True, False]))
    frame = await run_judge(
        server, items("a"), rollouts(["a"], {"weak": 2, "strong": 1}), protocol="per_answer"
    )
    assert len(server.requests) == frame.height == 5  # 3 rollouts + 2 controls, one call each
    weak = frame.filter(pl.col("role") == "weak").row(0, named=True)
    assert weak["criterion_met"] == [True, False, True]
    assert weak["score"] == pytest.approx(7 / 12)
    assert weak["criterion_p_yes"] == [None] * 3 and weak["p_score"] is None  # no logprobs here
    assert weak["finish_reasons"] == ["stop"]
    stats = summarize(frame)["a"]
    assert (stats["control_ref_mean"], stats["control_null_mean"]) == (1.0, 0.0)
    body = server.requests[0].body
    schema = body["response_format"]["json_schema"]
    assert schema["name"] == "RubricVerdicts"
    assert schema["schema"]["required"] == ["criterion_1", "criterion_2", "criterion_3"]
    assert "logprobs" not in body
    prompt = user_text(body)
    assert REFERENCE not in prompt  # never shown the reference while grading a rollout
    assert all(f"{i}. {c['criterion']}" in prompt for i, c in enumerate(RUBRIC, 1))


def test_the_reason_comes_before_the_verdict_in_the_schema() -> None:
    verdict_schema = rubric_model(2).model_json_schema()["$defs"]["Verdict"]
    assert list(verdict_schema["properties"]) == ["reason", "verdict"]
    assert verdict_schema["properties"]["verdict"]["enum"] == ["yes", "no"]
    assert rubric_model(2) is rubric_model(2)  # built once per rubric size


async def test_per_answer_reply_cut_at_max_tokens_is_an_infra_row(scripted: Scripted) -> None:
    def cut(body: dict[str, Any]) -> Reply | dict[str, Any]:
        if role_of(body) == "judge":
            return Reply(text='{"criterion_1": {"reason": "The answer', finish_reason="length")
        return LoopScript()(body)

    server = scripted(cut)
    frame = await run_judge(server, items("a"), rollouts(["a"], {"weak": 1}), protocol="per_answer")
    assert set(frame["call_status"]) == {"infra_error"}
    assert frame["score"].null_count() == frame.height  # a cut verdict is never read as "no"


async def test_reference_guided_grading_shows_the_reference_only_when_asked(
    scripted: Scripted,
) -> None:
    server = scripted(LoopScript())
    client = OpenAIChatClient(server.base_url, "scripted", max_retries=0, role="judge")
    try:
        rolls = rollouts(["a"], {"weak": 1})
        await judge(items("a"), rolls, client, SPEC, controls=False, reference=True)
        await judge(items("a"), rolls, client, SPEC, controls=False, reference=False)
    finally:
        await client.aclose()
    shown, blind = (user_text(r.body) for r in server.requests)
    assert f"<reference>\n{REFERENCE}\n</reference>" in shown
    assert REFERENCE not in blind and "<reference>" not in blind


def test_reference_guided_grading_needs_the_per_answer_protocol() -> None:
    from pydantic import ValidationError

    from autodata.settings import Loop

    assert Loop(judge_reference=True).judge_protocol == "per_answer"
    with pytest.raises(ValidationError, match=r"judge_reference needs loop\.judge_protocol"):
        Loop(judge_reference=True, judge_protocol="per_criterion")


def test_a_one_word_judge_budget_with_the_per_answer_protocol_is_a_settings_error() -> None:
    """Old recipes set models.judge.max_tokens: 4 (one word): under per_answer every verdict
    would be cut, so loading them fails at once, naming both ways out."""
    from pydantic import ValidationError

    from autodata.settings import Loop, Models, Settings

    old_budget = Models(judge=RoleModel(temperature=0.0, max_tokens=4))
    with pytest.raises(ValidationError, match=r"models\.judge\.max_tokens 4 is too small"):
        Settings(models=old_budget)
    assert Settings(models=old_budget, loop=Loop(judge_protocol="per_criterion"))
