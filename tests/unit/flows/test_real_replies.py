"""The loop against replies the way real servers send them (the model-reply cases of
``shared/cases``, re-made with the project's scripted server): every decision is the one the
undistorted reply would give, or an ``infra_error`` naming the real cause — never a quality
verdict (failed_quality, judge_unreliable, too_easy, suspicious_zero, accepted) made from a
reply that was read wrongly."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import SAMPLE_SOURCES, make_settings

from autodata import schemas
from autodata.progress import Reporter
from autodata.settings import Loop, Rollouts, Settings
from autodata.testing.realistic import RealServer
from autodata.testing.roles import LoopScript
from autodata.testing.scripted_server import ScriptedServer
from flows.generate import generate_flow
from tasks.ingest import ingest_to_files

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROLES = {"challenger", "verifier", "weak", "strong", "judge"}
SOLVERS_AND_WRITERS = ROLES - {"judge"}


@dataclass
class Outcome:
    decisions: list[str]
    reasons: list[str]
    frames: dict[str, pl.DataFrame]
    causes: dict[str, dict[str, int]]


def _settings(root: Path, url: str, **roles: dict[str, Any]) -> Settings:
    settings = make_settings(
        root, url, loop=Loop(max_rounds=1, max_infra_retries=0), rollouts=Rollouts(weak=2, strong=2)
    )
    models = settings.models.model_copy(
        update={r: settings.models.role(r).model_copy(update=c) for r, c in roles.items()}
    )
    return settings.model_copy(update={"models": models})


def run(
    tmp_path: Path, mode: str, only: set[str] | None = None, **roles: dict[str, Any]
) -> Outcome:
    """One round over one sample source against ``LoopScript`` distorted by ``mode``."""
    (tmp_path / "data" / "sources").mkdir(parents=True)
    shutil.copy(SAMPLE_SOURCES / "legal" / "late_delivery_clause.md", tmp_path / "data" / "sources")
    with ScriptedServer(RealServer(LoopScript(), mode, only)) as server:
        settings = _settings(tmp_path, server.base_url, **roles)
        ingest_to_files(settings.paths, settings.ingest)
        sources = pl.read_parquet(settings.paths.sources_table)
        loop = asyncio.run(
            generate_flow(
                settings, schemas.check(sources, schemas.SOURCES, "sources"), Reporter(quiet=True)
            )
        )
    rounds = loop["loop_rounds"]
    causes = {role: stats["causes"] for role, stats in loop.calls.items() if stats["causes"]}
    return Outcome(rounds["decision"].to_list(), rounds["reason"].to_list(), dict(loop), causes)


def test_the_undistorted_script_is_accepted(tmp_path):
    assert run(tmp_path, "reasoning_field", only=set()).decisions == ["accepted"]


@pytest.mark.parametrize(
    ("mode", "only"),
    [
        ("think", SOLVERS_AND_WRITERS),
        ("reasoning_field", ROLES),
        ("fence", ROLES),
        ("list_content", ROLES),
        ("list_content", {"weak", "strong", "judge"}),
    ],
    ids=[
        "think-block",
        "reasoning-field",
        "fenced-json",
        "list-content-all",
        "list-content-solvers",
    ],
)
def test_reasoning_fences_and_list_content_are_read_right(tmp_path, mode, only):
    outcome = run(tmp_path, mode, only)
    assert outcome.decisions == ["accepted"], outcome.reasons
    answers = outcome.frames["rollouts"]["answer"].to_list()
    assert answers and not any("<think>" in a or "brief thought" in a for a in answers)
    if mode in ("think", "reasoning_field"):
        assert all(outcome.frames["rollouts"]["reasoning"].to_list())  # kept, apart


def test_a_judge_whose_budget_ends_inside_its_think_block_is_a_named_cause(tmp_path):
    outcome = run(tmp_path, "think", {"judge"}, judge={"max_tokens": 4})
    assert outcome.decisions == ["infra_error"]  # not judge_unreliable: the judge never answered
    assert outcome.causes["judge"]["truncated"] > 0


def test_a_cut_weak_answer_is_asked_again_with_a_larger_budget(tmp_path):
    """shared/cases/finish-reason-length: cut at 256 tokens, the weak answers looked wrong and an
    easy item was accepted; with the budget retry they conclude, and the item is too easy."""
    outcome = run(tmp_path, "chatty", weak={"max_tokens": 256})
    assert outcome.decisions == ["too_easy"]
    weak = outcome.frames["rollouts"].filter(pl.col("role") == "weak")
    assert weak["finish_reason"].to_list() == ["stop", "stop"]


def test_a_weak_answer_cut_even_after_the_retry_is_never_graded(tmp_path):
    outcome = run(tmp_path, "chatty", weak={"max_tokens": 256, "retry_max_tokens": 256})
    assert outcome.decisions == ["infra_error"]
    assert (
        "cut at max_tokens" in outcome.reasons[0] and "models.weak.max_tokens" in outcome.reasons[0]
    )
    weak = outcome.frames["rollouts"].filter(pl.col("role") == "weak")
    assert set(weak["call_status"]) == {"truncated"} and set(weak["finish_reason"]) == {"length"}
    judged = outcome.frames["judgments"].filter(pl.col("role") == "weak")
    assert set(judged["call_status"]) == {"truncated"} and judged["score"].null_count() == 2


def test_a_cut_challenger_reply_is_truncation_not_failed_quality(tmp_path):
    outcome = run(tmp_path, "cut_json", {"challenger"})
    assert outcome.decisions == ["infra_error"]
    assert "cut at max_tokens" in outcome.reasons[0] and "EOF" not in outcome.reasons[0]
    assert outcome.frames["challenges"]["finish_reason"].to_list() == ["length"]


@pytest.mark.parametrize("mode", ["empty", "bad_usage", "html"])
def test_a_malformed_200_for_the_weak_solver_is_infra_not_a_zero(tmp_path, mode):
    outcome = run(tmp_path, mode, {"weak"})
    assert outcome.decisions == ["infra_error"]  # never suspicious_zero or too_easy
    assert outcome.causes["weak"]["bad_reply"] > 0


@pytest.mark.parametrize("variant", ["secs", "date", "none"])
def test_a_rate_limited_role_waits_instead_of_failing(tmp_path, variant):
    outcome = run(tmp_path, f"ratelimit:2:{variant}", {"challenger"})
    assert outcome.decisions == ["accepted"]
    assert outcome.causes["challenger"]["http_429"] >= 1
