"""Stage challenge + verify against the scripted loopback server: malformed replies and outages
become rows (never crashes), the code checks and the verifier's flags become typed reasons, and
round r ≥ 2 tells the Challenger what went wrong before (DESIGN §1 steps 1, 2 and 8)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import polars as pl
import pytest

from autodata import prompts, schemas
from autodata.llm.client import RESAMPLE_SEED_STRIDE, OpenAIChatClient
from autodata.settings import Gate, RoleModel
from autodata.testing.replies import Reply
from autodata.testing.roles import RUBRIC, LoopScript, challenger_item, role_of, user_text
from autodata.testing.scripted_server import ScriptedServer
from tasks import accept
from tasks.challenge import (
    ChallengeOut,
    Roles,
    VerifierOut,
    candidate_id,
    challenge,
    feedback_text,
    static_quality,
    verdict_reason,
)

RECIPE = "recipe-hash0"
SPEC = RoleModel(backend="openai", base_url="http://unused/v1", model="scripted", seed=0)
SOURCE = {"source_id": "src-a", "domain": "legal", "text": "A buyer may terminate after notice."}
NO_HISTORY = schemas.empty(schemas.ROUNDS)
Scripted = Callable[..., ScriptedServer]


@asynccontextmanager
async def roles_on(
    server: ScriptedServer, *, max_resamples: int = 2, max_retries: int = 1
) -> AsyncIterator[Roles]:
    """Challenger and verifier clients on ``server`` (no cache, near-zero retry backoff)."""
    clients = [
        OpenAIChatClient(
            server.base_url,
            "scripted",
            max_resamples=max_resamples,
            max_retries=max_retries,
            backoff_s=0.001,
            role=role,
        )
        for role in ("challenger", "verifier")
    ]
    try:
        yield Roles(clients[0], SPEC, clients[1], SPEC, RECIPE)
    finally:
        for client in clients:
            await client.aclose()


async def run_challenge(
    server: ScriptedServer,
    sources: list[dict[str, Any]] | None = None,
    history: pl.DataFrame = NO_HISTORY,
    round_no: int = 1,
    **client_kw: Any,
) -> pl.DataFrame:
    async with roles_on(server, **client_kw) as roles:
        return await challenge(pl.DataFrame(sources or [SOURCE]), history, round_no, roles)


def requests_of(server: ScriptedServer, role: str) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if role_of(r.body) == role]


def item(**over: Any) -> dict[str, Any]:
    """A valid challenger item (as JSON-ready dict); ``over`` replaces fields."""
    return {
        "context": "A supplier delivered late; the buyer sent notice on day 3 of a 5-day window.",
        "question": "May the buyer terminate the contract, and on what ground?",
        "reference_answer": "Yes, because notice was served inside the window.",
        "question_type": "application",
        "reasoning_skills": ["rule application"],
        "rubric": RUBRIC,
    } | over


# --- the good path ------------------------------------------------------------------------


async def test_a_valid_item_passes_with_its_columns_and_lineage(scripted: Scripted) -> None:
    server = scripted(LoopScript(challenger=lambda body: item()))
    frame = await run_challenge(server)
    assert frame.schema == schemas.CHALLENGES
    row = frame.row(0, named=True)
    assert (row["qv_passed"], row["qv_reason"], row["call_status"]) == (True, "", "ok")
    assert row["candidate_id"] == candidate_id("src-a", 1, RECIPE)
    assert row["question"] == item()["question"]
    assert row["rubric"] == RUBRIC
    assert (row["recipe_hash"], row["challenger_model"]) == (RECIPE, "scripted")
    hashes = prompts.role_hashes()
    assert (row["challenger_prompt_hash"], row["verifier_prompt_hash"]) == (
        hashes["challenger"],
        hashes["verifier"],
    )
    assert row["verifier_model"] == "scripted"
    assert [role_of(r.body) for r in server.requests] == ["challenger", "verifier"]
    # the challenger asked for JSON of the ChallengeOut schema, seeded by the round
    body = requests_of(server, "challenger")[0]
    assert body["response_format"]["json_schema"]["name"] == "ChallengeOut"
    assert body["seed"] == SPEC.seed + 1
    assert SOURCE["text"] in user_text(body)


def test_candidate_ids_are_stable_and_distinct() -> None:
    assert candidate_id("s", 1, "r") == candidate_id("s", 1, "r")
    assert (
        len(
            {
                candidate_id("s", 1, "r"),
                candidate_id("s", 2, "r"),
                candidate_id("t", 1, "r"),
                candidate_id("s", 1, "q"),
            }
        )
        == 4
    )


# --- malformed challenger output: failed_quality after the client's re-asks ---------------


@pytest.mark.parametrize(
    ("reply", "where"),
    [
        ("Sure! Here is a hard question about the clause.", "not valid JSON"),
        (item(rubric=[{"criterion": "States the outcome", "weight": "+8"}]), "rubric.0.weight"),
        (item(rubric=[{"criterion": "States the outcome", "weight": 9}]), "rubric.0.weight"),
        (item(rubric=[{"criterion": "States the outcome", "weight": -2}]), "rubric.0.weight"),
        (item(rubric=[]), "rubric"),
        ({k: v for k, v in item().items() if k != "question"}, "question"),
    ],
    ids=["not-json", "weight-plus8", "weight-9", "weight-negative", "empty-rubric", "no-question"],
)
async def test_malformed_challenger_output_is_failed_quality(
    scripted: Scripted, reply: Any, where: str
) -> None:
    server = scripted(LoopScript(challenger=lambda body: reply))
    frame = await run_challenge(server, max_resamples=2)
    row = frame.row(0, named=True)
    assert (row["qv_passed"], row["call_status"]) == (False, "ok")  # the model's fault, not infra
    assert row["qv_reason"].startswith("challenger output invalid:")
    assert "after 3 tries" in row["qv_reason"] and where in row["qv_reason"]
    assert row["question"] is None and row["rubric"] == []
    challenger = requests_of(server, "challenger")
    assert len(challenger) == server.count() == 3  # max_resamples + 1, and no verifier call
    assert [b["seed"] for b in challenger] == [1 + k * RESAMPLE_SEED_STRIDE for k in range(3)]
    rounds = accept.decide(frame, schemas.empty(schemas.JUDGMENTS), Gate(method="fixed"))
    assert rounds["decision"].to_list() == ["failed_quality"]


async def test_a_re_ask_can_recover_from_one_malformed_reply(scripted: Scripted) -> None:
    server = scripted(LoopScript(challenger=lambda body: item()))
    server.queue(Reply(text='{"context": "truncated'))
    row = (await run_challenge(server)).row(0, named=True)
    assert row["qv_passed"] and row["call_status"] == "ok"
    assert len(requests_of(server, "challenger")) == 2


def test_challenge_out_enforces_the_weight_contract() -> None:
    ok = ChallengeOut.model_validate(item(rubric=[{"criterion": "abc", "weight": 7}]))
    assert ok.rubric[0].weight == 7
    for bad in (0, 8, "+8", 2.5, "three"):
        with pytest.raises(ValueError):
            ChallengeOut.model_validate(item(rubric=[{"criterion": "abc", "weight": bad}]))


# --- outages: infra_error, never a quality verdict ----------------------------------------


async def test_a_challenger_that_always_fails_is_infra_error(scripted: Scripted) -> None:
    server = scripted(lambda body: Reply(status=500, text="boom"))
    frame = await run_challenge(server, [SOURCE, SOURCE | {"source_id": "src-b"}], max_retries=2)
    assert frame["call_status"].to_list() == ["infra_error"] * 2
    assert frame["qv_passed"].to_list() == [False, False]
    assert all(
        r.startswith("challenger call failed:") and "HTTP 500" in r for r in frame["qv_reason"]
    )
    assert server.count() == 2 * 3  # max_retries + 1 per source, then a row, not a crash
    rounds = accept.decide(frame, schemas.empty(schemas.JUDGMENTS), Gate(method="fixed"))
    assert rounds["decision"].to_list() == ["infra_error"] * 2


async def test_a_verifier_outage_is_infra_error_and_its_garbage_is_quality(
    scripted: Scripted,
) -> None:
    down = scripted(lambda b: item() if role_of(b) == "challenger" else Reply(status=503))
    row = (await run_challenge(down, max_retries=0)).row(0, named=True)
    assert row["call_status"] == "infra_error" and row["qv_reason"].startswith(
        "verifier call failed"
    )
    assert row["question"] == item()["question"]  # the item is kept for inspection
    garbage = scripted(lambda b: item() if role_of(b) == "challenger" else "looks fine to me")
    row = (await run_challenge(garbage, max_resamples=1)).row(0, named=True)
    assert row["call_status"] == "ok" and not row["qv_passed"]
    assert row["qv_reason"].startswith("verifier output invalid")
    assert len(requests_of(garbage, "verifier")) == 2


# --- quality checks -----------------------------------------------------------------------


def _out(**over: Any) -> ChallengeOut:
    return ChallengeOut.model_validate(item(**over))


def test_static_quality_passes_a_clean_item() -> None:
    assert static_quality(_out()) is None


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        (
            {"context": "Facts. YES -- because notice was served INSIDE the window!"},
            "context leak",
        ),
        (
            {
                "rubric": [
                    {"criterion": "States the outcome", "weight": 3},
                    {"criterion": "states the  outcome.", "weight": 2},
                ]
            },
            "duplicate criteria",
        ),
        ({"question": "Terminate?"}, "vague question"),
        ({"question": "Yes, because notice was served inside the window."}, "repeats the question"),
        (
            {
                "rubric": [
                    {
                        "criterion": "Says: yes, because notice was served INSIDE the window",
                        "weight": 3,
                    }
                ]
            },
            "rubric leak: criterion 1",
        ),
        (
            {
                "reference_answer": "The tank holds 1200 litres because the inflow of 30 litres per minute runs for 40 minutes before the valve closes.",
                "rubric": [
                    {"criterion": "Gives the volume", "weight": 2},
                    {
                        "criterion": "Explains that the inflow of 30 litres per minute runs for 40 minutes before the valve closes",
                        "weight": 3,
                    },
                ],
            },
            "rubric leak: criterion 2",
        ),
    ],
    ids=[
        "verbatim-leak",
        "duplicate-criteria",
        "vague",
        "answer-is-question",
        "rubric-holds-answer",
        "rubric-copies-a-sentence",
    ],
)
def test_static_quality_rejections(over: dict[str, Any], reason: str) -> None:
    assert reason in (static_quality(_out(**over)) or "")


def test_a_criterion_may_name_a_key_point_of_the_answer() -> None:
    """Only restatement is a leak: a criterion naming one figure or a short phrase of the answer
    (as rubrics do) passes."""
    over = {
        "reference_answer": "The tank holds 1200 litres because the inflow of 30 litres per minute runs for 40 minutes before the valve closes.",
        "rubric": [
            {"criterion": "States that the tank holds 1200 litres", "weight": 3},
            {"criterion": "Multiplies the inflow rate by the time the valve is open", "weight": 4},
        ],
    }
    assert static_quality(_out(**over)) is None
    # measured on Qwen2.5-Coder 1.5B: a step named in the answer's words is not a restatement
    step = {
        "reference_answer": "The net rate from 08:00 to 10:00 is 200 - 100 = 100 litres per hour, so the tank holds 200 litres at 10:00. The tank is full at 12:30.",
        "rubric": [{"criterion": "States the net rate from 08:00 to 10:00", "weight": 3}],
    }
    assert static_quality(_out(**step)) is None


@pytest.mark.parametrize(
    ("question", "vague"),
    [
        ("买方能否解除合同？", False),  # 8 CJK characters: 8 words, though under 15 characters
        ("買主は契約を解除できるか？", False),
        ("계약을 해지할 수 있나요?", False),
        ("合同？", True),
        ("Is it legal?", True),  # 3 words, 11 characters: as vague as before
        ("Can the buyer end it?", False),
    ],
)
def test_the_vague_question_rule_counts_cjk_characters_as_words(question: str, vague: bool) -> None:
    reason = static_quality(_out(question=question)) or ""
    assert reason.startswith("vague question") is vague, reason


def test_a_short_answer_inside_the_context_is_not_a_leak() -> None:
    # "Yes." appears in nearly every context: answers under 12 characters are not checked
    assert (
        static_quality(_out(reference_answer="Yes.", context="Yes. The buyer sent notice.")) is None
    )


async def test_a_leaking_item_is_rejected_in_code_without_asking_the_verifier(
    scripted: Scripted,
) -> None:
    leak = item(context="Facts. " + item()["reference_answer"])
    server = scripted(LoopScript(challenger=lambda body: leak))
    row = (await run_challenge(server)).row(0, named=True)
    assert not row["qv_passed"] and row["qv_reason"].startswith("context leak:")
    assert requests_of(server, "verifier") == []


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"leak": True, "clear": True, "rubric_ok": True}, "context leak (verifier): r"),
        ({"leak": False, "clear": False, "rubric_ok": True}, "vague question (verifier): r"),
        (
            {"leak": False, "clear": True, "rubric_ok": False},
            "rubric does not cover the answer (verifier): r",
        ),
        ({"leak": True, "clear": False, "rubric_ok": False}, "context leak (verifier): r"),
        ({"leak": False, "clear": True, "rubric_ok": True}, None),
    ],
)
async def test_verifier_flags_map_to_reasons(
    scripted: Scripted, flags: dict[str, bool], reason: str | None
) -> None:
    assert verdict_reason(VerifierOut(**flags, reason="r")) == reason
    server = scripted(LoopScript(verifier=flags | {"reason": "r"}))
    row = (await run_challenge(server)).row(0, named=True)
    assert row["qv_passed"] is (reason is None)
    assert row["qv_reason"] == (reason or "")
    verifier = requests_of(server, "verifier")[0]
    # the verifier sees the whole item, reference answer and rubric included
    assert "Yes: notice was given" in user_text(verifier)
    assert RUBRIC[1]["criterion"] in user_text(verifier)


# --- typed feedback into the next round ---------------------------------------------------


def _judgments(cid: str, weak: list[float], strong: list[float]) -> list[dict[str, Any]]:
    scored = [("weak", i, s) for i, s in enumerate(weak)] + [
        ("strong", i, s) for i, s in enumerate(strong)
    ]
    scored += [("control_ref", 0, 1.0), ("control_null", 0, 0.0)]
    return [
        {
            "candidate_id": cid,
            "role": role,
            "rollout": i,
            "criterion_met": [],
            "criterion_p_yes": [],
            "score": s,
            "p_score": None,
            "judge_model": "j",
            "call_status": "ok",
        }
        for role, i, s in scored
    ]


def _leaky_in_round_3(body: dict[str, Any]) -> dict[str, Any]:
    base = challenger_item(body)
    if body["seed"] == 3:  # SPEC.seed + round 3
        base["context"] += " " + base["reference_answer"]
    return base


async def test_later_rounds_get_typed_feedback_and_ask_for_a_new_angle(scripted: Scripted) -> None:
    """Round 1 too easy (weak mean 0.83), round 2 failed on strong, round 3 failed quality:
    the round-4 request lists all three, with questions and figures, and asks for a new angle."""
    server = scripted(LoopScript(challenger=_leaky_in_round_3))
    other = SOURCE | {"source_id": "src-other", "text": "Another passage entirely."}
    figures = {1: ([0.75, 0.75, 1.0], []), 2: ([0.4, 0.4, 0.4], [0.55, 0.55, 0.55]), 3: ([], [])}
    history, questions = NO_HISTORY, {}
    for round_no in (1, 2, 3):
        frame = await run_challenge(server, [SOURCE, other], history, round_no)
        cid = frame.filter(pl.col("source_id") == "src-a")["candidate_id"].item()
        questions[round_no] = frame.filter(pl.col("candidate_id") == cid)["question"].item()
        weak, strong = figures[round_no]
        judgments = pl.DataFrame(
            _judgments(cid, weak, strong) if weak else [], schema=schemas.JUDGMENTS
        )
        decided = accept.decide(
            frame.filter(pl.col("candidate_id") == cid), judgments, Gate(method="fixed")
        )
        history = pl.concat([history, decided])
    assert history["decision"].to_list() == ["too_easy", "failed_strong", "failed_quality"]

    text = feedback_text(history, "src-a")
    assert f'too easy (weak solver mean 0.83): "{questions[1]}"' in text
    assert f'failed on strong (weak 0.40, strong 0.55, gap 0.15): "{questions[2]}"' in text
    leak = "context leak: the reference answer appears verbatim in the context"
    assert f'failed quality ({leak}): "{questions[3]}"' in text
    assert feedback_text(history, "src-other") == ""  # feedback stays with its source

    await run_challenge(server, [SOURCE, other], history, 4)
    bodies = [b for b in requests_of(server, "challenger") if b["seed"] == 4]
    sent = {("Another passage" in user_text(b)): user_text(b) for b in bodies}
    assert text.strip() in sent[False]
    asked = " ".join(sent[False].split())
    assert "entirely new question from a different angle" in asked
    assert "not a rephrasing" in asked
    assert "Earlier attempts" not in sent[True]  # the other source has no failed history


async def test_round_one_has_no_feedback_section(scripted: Scripted) -> None:
    server = scripted()
    await run_challenge(server)
    assert "Earlier attempts" not in user_text(requests_of(server, "challenger")[0])
    assert feedback_text(NO_HISTORY, "src-a") == ""


def test_infra_and_accepted_rounds_give_no_feedback() -> None:
    rows = [
        {
            "candidate_id": f"c{i}",
            "source_id": "src-a",
            "round": i,
            "question": "Q",
            "decision": d,
            "reason": "",
            "feedback": accept.feedback_line(d, "Q", {}, ""),
            "recipe_hash": "r",
            "gate": "{}",
        }
        for i, d in enumerate(["infra_error", "accepted"], 1)
    ]
    assert feedback_text(pl.DataFrame(rows, schema=schemas.ROUNDS), "src-a") == ""
