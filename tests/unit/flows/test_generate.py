"""The round loop (DESIGN §1) run through Prefect against the scripted loopback server.

Each scenario runs ingest → ``generate_flow`` (a Prefect flow) → ``finalize``: the loop and its
decisions, a few seconds each. ``flows.pipeline.run_flow`` runs these same calls and then the
Great Expectations gate and export, which add ~10-30 s per call here; those belong to their own
tests, so this file calls the loop's parts directly to stay around a minute.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import polars as pl
import pytest
from conftest import SAMPLE_SOURCES, make_settings
from gate_rules import inconsistent_rows

from autodata import prompts, schemas
from autodata.env import git_revision
from autodata.progress import Reporter
from autodata.settings import Gate, Loop, Settings
from autodata.testing.replies import Reply
from autodata.testing.roles import (
    LoopScript,
    challenger_item,
    request_role_counts,
    role_of,
    user_text,
)
from autodata.testing.scripted_server import ScriptedServer
from flows.generate import _startup_objects_frozen, generate_flow
from tasks.accept import finalize
from tasks.generate import work_key
from tasks.ingest import ingest_to_files

pytestmark = pytest.mark.usefixtures("prefect_harness")

QUIET = Reporter(quiet=True)
N_SOURCES = 6  # the repo's sample sources
CALLS_PER_ANSWER = 1  # loop.judge_protocol per_answer: one judge call grades every criterion
STAGE_FILES = (
    "challenges",
    "weak_rollouts",
    "weak_judgments",
    "strong_rollouts",
    "strong_judgments",
    "rounds",
    "fresh_weak_rollouts",
    "fresh_weak_judgments",
    "fresh_strong_rollouts",
    "fresh_strong_judgments",
)
Scripted = Callable[..., ScriptedServer]


@dataclass
class Run:
    settings: Settings
    metrics: dict[str, Any]

    @property
    def rounds(self) -> pl.DataFrame:
        return pl.read_parquet(self.settings.paths.rounds_table)

    @property
    def accepted(self) -> pl.DataFrame:
        return pl.read_parquet(self.settings.paths.accepted_table)

    def round_dir(self, round_no: int) -> Path:
        """Round ``round_no``'s folder; each step's file sits in a subfolder named by its key."""
        sources = pl.read_parquet(self.settings.paths.sources_table)
        return self.settings.paths.round_files(work_key(sources), round_no).rounds.parent

    def step_file(self, round_no: int, step: str) -> Path:
        """The round's one file of ``step`` (one set of settings made this project)."""
        (found,) = self.round_dir(round_no).rglob(f"{step}.parquet")
        return found


async def run_loop(settings: Settings) -> Run:
    """ingest → generate (Prefect flow) → accept: the loop, its tables and its metrics."""
    ingest_to_files(settings.paths, settings.ingest)
    sources = schemas.check(
        pl.read_parquet(settings.paths.sources_table), schemas.SOURCES, "sources"
    )
    await generate_flow(settings, sources, QUIET)
    return Run(settings, finalize(settings, git_revision()))


def _with_role(settings: Settings, role: str, **changes: Any) -> Settings:
    """``settings`` with one role's model settings changed (e.g. max_retries, not in the recipe)."""
    spec = settings.models.role(role).model_copy(update=changes)
    return settings.model_copy(update={"models": settings.models.model_copy(update={role: spec})})


def chat_counts(server: ScriptedServer) -> dict[str, int]:
    counts = request_role_counts(server.requests)
    return {
        role: counts.get(role, 0) for role in ("challenger", "verifier", "weak", "strong", "judge")
    }


def challenger_prompts(server: ScriptedServer, round_no: int) -> list[str]:
    """What the Challenger was sent in ``round_no`` (its seed is spec.seed 0 + round)."""
    return [
        user_text(r.body)
        for r in server.requests
        if role_of(r.body) == "challenger" and r.body["seed"] == round_no
    ]


# --- the baseline: default script, every sample source accepted in round 1 ------------------


@pytest.fixture(scope="module")
def baseline(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Run, int]]:
    """One run of the loop with the default LoopScript: (run, requests it made)."""
    root = tmp_path_factory.mktemp("baseline")
    shutil.copytree(SAMPLE_SOURCES, root / "data" / "sources")
    with ScriptedServer(LoopScript()) as server:
        settings = make_settings(root, server.base_url)
        run = asyncio.run(run_loop(settings))
        yield run, sum(chat_counts(server).values())


def test_default_script_accepts_every_source_in_round_one(baseline: tuple[Run, int]) -> None:
    run, requests = baseline
    paths = run.settings.paths
    assert run.metrics["sources"] == N_SOURCES and run.metrics["accepted"] == N_SOURCES
    assert run.metrics["decisions"]["accepted"] == N_SOURCES
    assert sum(run.metrics["decisions"].values()) == N_SOURCES
    assert run.metrics["mean_rounds_per_accepted"] == 1.0
    calls = {role: c["calls"] for role, c in run.metrics["llm"]["per_role"].items()}
    # k=3 weak + k=3 strong per source, and as many fresh ones per accepted item (rollouts.fresh);
    # judge: 3 weak + 2 controls + 3 strong + 6 fresh answers, one call each
    assert calls == {
        "challenger": 6,
        "verifier": 6,
        "weak": 18 + 18,
        "strong": 18 + 18,
        "judge": 6 * 14 * CALLS_PER_ANSWER,
    }
    assert run.metrics["llm"]["http_requests"] == requests == sum(calls.values())
    written = json.loads(paths.generate_metrics.read_text())
    assert written == {k: v for k, v in run.metrics.items() if k != "skipped_files"}

    rounds, accepted = run.rounds, run.accepted
    assert rounds.schema == schemas.ROUNDS and accepted.schema == schemas.ACCEPTED
    assert rounds["decision"].to_list() == ["accepted"] * N_SOURCES
    assert set(rounds["round"]) == {1} and set(accepted["rounds_used"]) == {1}
    for name in STAGE_FILES:
        assert run.step_file(1, name).exists(), name
    assert not run.round_dir(2).exists()


def test_accepted_rows_carry_lineage(baseline: tuple[Run, int]) -> None:
    run, _ = baseline
    accepted, settings = run.accepted, run.settings
    sources = pl.read_parquet(settings.paths.sources_table)
    assert sorted(accepted["source_id"]) == sorted(sources["source_id"])
    assert accepted["candidate_id"].n_unique() == N_SOURCES
    assert set(accepted["recipe_hash"]) == {settings.recipe_hash()}
    hashes = prompts.role_hashes()
    for role in ("challenger", "verifier", "weak", "strong", "judge"):
        assert set(accepted[f"{role}_model"]) == {"scripted"}
        assert set(accepted[f"{role}_prompt_hash"]) == {hashes[role]}
    assert accepted["git_rev"].n_unique() == 1 and accepted["git_rev"][0] not in ("", None)
    assert {json.dumps(json.loads(g), sort_keys=True) for g in accepted["gate"]} == {
        json.dumps(settings.gate.model_dump(), sort_keys=True)
    }
    assert set(accepted["domain"]) == {"cs_research", "legal", "math"}
    verifiable_only = ("answer_key", "weak_vote", "strong_vote")  # null in rubric mode
    assert accepted.drop(verifiable_only).null_count().row(0) == (0,) * (accepted.width - 3)
    assert set(accepted["fresh_gap"]) == {round(5 / 12, 9)} and not any(accepted["fresh_flag"])
    # the figures of the default script: weak 3/12, strong 8/12
    assert set(accepted["weak_mean"]) == {0.25}
    assert set(accepted["strong_mean"]) == {round(8 / 12, 9)}


# --- the weak gate saves the strong solver ------------------------------------------------


async def test_strong_is_never_called_when_weak_fails_its_gate(
    scripted: Scripted, sources_dir: Path
) -> None:
    server = scripted(LoopScript(weak_met=[True, True, True]))
    run = await run_loop(
        make_settings(sources_dir.parents[1], server.base_url, loop=Loop(max_rounds=1))
    )
    rounds = run.rounds
    assert rounds["decision"].to_list() == ["too_easy"] * N_SOURCES
    assert rounds["reason"].str.starts_with("weak_mean 1.000 > 0.65").all()
    assert rounds["strong_mean"].null_count() == N_SOURCES
    counts = chat_counts(server)
    assert counts["strong"] == 0 and counts["weak"] == 3 * N_SOURCES
    # weak rollouts + controls only
    assert counts["judge"] == N_SOURCES * (3 + 2) * CALLS_PER_ANSWER
    assert pl.read_parquet(run.step_file(1, "strong_rollouts")).is_empty()
    assert run.accepted.is_empty() and run.metrics["accepted"] == 0


async def test_a_judge_that_says_yes_to_everything_is_unreliable(
    scripted: Scripted, sources_dir: Path
) -> None:
    script = LoopScript(weak_met=[True] * 3, strong_met=[True] * 3, null_met=True)
    server = scripted(script)
    run = await run_loop(
        make_settings(sources_dir.parents[1], server.base_url, loop=Loop(max_rounds=1))
    )
    assert run.rounds["decision"].to_list() == ["judge_unreliable"] * N_SOURCES
    assert (run.rounds["control_gap"] < run.settings.gate.control_margin).all()
    assert run.metrics["decisions"]["too_easy"] == 0 and run.metrics["accepted"] == 0
    assert chat_counts(server)["strong"] == 0


# --- infrastructure failures are retried, never judged ------------------------------------


class WeakOutageInRoundOne:
    """The weak solver's server answers 500 until the Challenger starts round 2."""

    def __init__(self, script: LoopScript, n_sources: int) -> None:
        self.script, self.n_sources, self.challenges = script, n_sources, 0

    def __call__(self, body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        role = role_of(body)
        self.challenges += role == "challenger"
        if role == "weak" and self.challenges <= self.n_sources:
            return Reply(status=500, text="weak solver is down")
        return self.script(body)


async def test_an_infra_failure_is_retried_in_the_next_round(
    scripted: Scripted, sources_dir: Path
) -> None:
    server = scripted(WeakOutageInRoundOne(LoopScript(), N_SOURCES))
    settings = _with_role(
        make_settings(sources_dir.parents[1], server.base_url), "weak", max_retries=0
    )
    run = await run_loop(settings)
    rounds = run.rounds
    first, second = (rounds.filter(pl.col("round") == r) for r in (1, 2))
    assert first["decision"].to_list() == ["infra_error"] * N_SOURCES
    assert first["reason"].str.contains("retried in a later round").all()
    assert first["feedback"].to_list() == [""] * N_SOURCES
    assert second["decision"].to_list() == ["accepted"] * N_SOURCES
    assert run.metrics["decisions"]["too_easy"] == run.metrics["decisions"]["failed_strong"] == 0
    assert set(run.accepted["round"]) == {2} and set(run.accepted["rounds_used"]) == {2}
    counts = chat_counts(server)
    assert counts["weak"] == 3 * 3 * N_SOURCES  # 18 failed in round 1, 18 ok + 18 fresh in round 2
    assert counts["strong"] == 2 * 3 * N_SOURCES  # round 2 only (and its fresh re-scoring)
    weak_1 = pl.read_parquet(run.step_file(1, "weak_rollouts"))
    assert set(weak_1["call_status"]) == {"infra_error"}
    # an outage is not the Challenger's fault: no feedback about it in round 2
    assert all("Earlier attempts" not in text for text in challenger_prompts(server, 2))


# --- kill and resume ----------------------------------------------------------------------


def _copy_run(run: Run, root: Path, server: ScriptedServer) -> Run:
    shutil.copytree(run.settings.paths.sources.parents[1], root)
    return Run(make_settings(root, server.base_url), {})


def _forget_outputs(settings: Settings) -> None:
    paths = settings.paths
    for path in (paths.rounds_table, paths.accepted_table, paths.generate_metrics):
        path.unlink()
    for path in paths.interim.glob("*.*"):
        if path.is_file():
            path.unlink()


async def test_resume_after_a_kill_makes_no_new_calls(
    baseline: tuple[Run, int], scripted: Scripted, tmp_path: Path
) -> None:
    """Killed right after round 1's weak solve: per-round files up to weak_rollouts survive,
    the cache survives. The rerun asks the server nothing and writes the same tables."""
    done, _ = baseline
    server = scripted()  # answers "ok" to anything: any request would be a failure anyway
    copy = _copy_run(done, tmp_path / "killed", server)
    round_1 = copy.round_dir(1)
    for name in STAGE_FILES[STAGE_FILES.index("weak_rollouts") + 1 :]:
        copy.step_file(1, name).unlink()
    _forget_outputs(copy.settings)
    assert sorted(p.stem for p in round_1.rglob("*.parquet")) == ["challenges", "weak_rollouts"]
    assert (copy.settings.paths.cache / "calls.sqlite").exists()

    rerun = await run_loop(copy.settings)
    assert sum(chat_counts(server).values()) == 0  # only the endpoint preflight (GET /models)
    assert rerun.rounds.equals(done.rounds)
    assert rerun.accepted.equals(done.accepted)
    per_role = rerun.metrics["llm"]["per_role"]
    assert sum(c["calls"] for c in per_role.values()) == 0
    assert per_role["judge"]["cache_hits"] == 6 * 14 * CALLS_PER_ANSWER  # 8 answers + 6 fresh ones
    assert per_role["strong"]["cache_hits"] == 18 + 18  # and the fresh re-scoring
    assert per_role["weak"]["cache_hits"] == 18  # fresh only: weak_rollouts.parquet read back


async def test_rerun_without_the_cache_resumes_from_the_stage_files(
    baseline: tuple[Run, int], scripted: Scripted, tmp_path: Path
) -> None:
    done, _ = baseline
    server = scripted()
    copy = _copy_run(done, tmp_path / "no-cache", server)
    shutil.rmtree(copy.settings.paths.cache)
    _forget_outputs(copy.settings)
    rerun = await run_loop(copy.settings)
    assert sum(chat_counts(server).values()) == 0  # only the endpoint preflight (GET /models)
    assert rerun.rounds.equals(done.rounds) and rerun.accepted.equals(done.accepted)


# --- truthful resume: a change reruns what it changes; rows name what made them -----------


def _edit_prompt(monkeypatch: pytest.MonkeyPatch, name: str, extra: str) -> None:
    """Append ``extra`` to template ``name`` for the rest of the test (as an edit of its file)."""
    original = prompts.template

    def edited(template: str) -> Template:
        text = original(template).template
        return Template(text + extra if template == name else text)

    monkeypatch.setattr(prompts, "template", edited)


def _versions(run: Run, step: str) -> int:
    """How many versions of round 1's ``step`` file the project holds (one per content key)."""
    return len(list(run.round_dir(1).rglob(f"{step}.parquet")))


async def test_a_judge_prompt_edit_reruns_the_judge_and_rows_name_the_new_prompt(
    baseline: tuple[Run, int], scripted: Scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judge's prompt changes between two runs of one project. Its steps run again (every
    judge call is new); the challenges and the weak answers are read back from their files and
    the strong answers come from the cache (the same candidates pass the weak gate). Every
    accepted row names the judge prompt that graded it, and the other roles' as before."""
    done, _ = baseline
    server = scripted()
    copy = _copy_run(done, tmp_path / "judge-edited", server)
    _forget_outputs(copy.settings)
    before = prompts.role_hashes()
    # the system prompt of the default judge protocol (loop.judge_protocol per_answer)
    _edit_prompt(
        monkeypatch, "judge_rubric_system", "\nGrade strictly: a vague answer meets nothing."
    )
    after = prompts.role_hashes()
    assert {r for r in before if before[r] != after[r]} == {"judge"}

    rerun = await run_loop(copy.settings)
    assert chat_counts(server) == {"challenger": 0, "verifier": 0, "weak": 0, "strong": 0,
                                   "judge": N_SOURCES * (3 + 2 + 3 + 6) * CALLS_PER_ANSWER}  # fmt: skip
    per_role = rerun.metrics["llm"]["per_role"]
    # the strong step and the fresh re-scoring (it follows the decisions) ran again: from the cache
    assert per_role["strong"]["cache_hits"] == 6 * N_SOURCES
    assert per_role["weak"]["cache_hits"] == 3 * N_SOURCES  # fresh only: weak answers from files
    assert per_role["challenger"]["cache_hits"] == 0
    for step in ("challenges", "weak_rollouts"):
        assert _versions(copy, step) == 1, step  # read back
    for step in ("weak_judgments", "strong_rollouts", "strong_judgments", "rounds"):
        assert _versions(copy, step) == 2, step  # the old file is never read for the new prompt
    accepted = rerun.accepted
    assert set(accepted["judge_prompt_hash"]) == {after["judge"]} != {before["judge"]}
    for role in ("challenger", "verifier", "weak", "strong"):
        assert set(accepted[f"{role}_prompt_hash"]) == {before[role]}
    assert accepted.drop("judge_prompt_hash").equals(done.accepted.drop("judge_prompt_hash"))


async def test_a_gate_change_reruns_only_the_steps_it_applies_to(
    baseline: tuple[Run, int], scripted: Scripted, tmp_path: Path
) -> None:
    """The gate picks the strong solver's candidates and decides: those steps get new files
    (from the cache: no request), the steps before them are read back."""
    done, _ = baseline
    server = scripted()
    copy = _copy_run(done, tmp_path / "gate-changed", server)
    _forget_outputs(copy.settings)
    gate = copy.settings.gate.model_copy(update={"min_gap": 0.3})
    settings = copy.settings.model_copy(update={"gate": gate})
    rerun = await run_loop(settings)
    assert sum(chat_counts(server).values()) == 0
    for step in ("challenges", "weak_rollouts", "weak_judgments"):
        assert _versions(copy, step) == 1, step
    for step in ("strong_rollouts", "strong_judgments", "rounds"):
        assert _versions(copy, step) == 2, step
    assert set(rerun.accepted["recipe_hash"]) == {settings.recipe_hash()}  # this run's recipe
    assert rerun.accepted["candidate_id"].equals(done.accepted["candidate_id"])


def test_accept_reads_models_and_prompt_hashes_from_the_rows_not_the_settings(
    baseline: tuple[Run, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deciding again after the settings changed (another judge model, an edited prompt) and
    without rerunning the loop: the accepted rows still name what made them."""
    done, _ = baseline
    root = tmp_path / "renamed"
    shutil.copytree(done.settings.paths.sources.parents[1], root)
    before = prompts.role_hashes()
    _edit_prompt(monkeypatch, "solver_user", "\nShow your work.")
    settings = _with_role(make_settings(root, "http://127.0.0.1:9/v1"), "judge", model="acme/judge-70b")  # fmt: skip
    finalize(settings, "rev")
    accepted = pl.read_parquet(settings.paths.accepted_table)
    assert set(accepted["judge_model"]) == {"scripted"}
    assert set(accepted["weak_prompt_hash"]) == {before["weak"]} != {prompts.role_hashes()["weak"]}


# --- decisions agree with the gate they record; the round budget holds --------------------

PLANS = {  # per candidate, from its context's tag: (weak_met, strong_met)
    0: ([True, True, True], [True, True, True]),  # too easy
    1: ([False, False, False], [True, True, False]),  # a weak answer scored 0
    2: ([True, False, False], [True, False, False]),  # strong fails
    3: ([True, False, False], [True, True, False]),  # accepted
}


class BySource(LoopScript):
    """Judge verdicts that depend on the item (its context tag), so a run mixes outcomes."""

    def _judge(self, body: dict[str, Any]) -> Reply | dict[str, Any]:
        tag = re.search(r"case ([0-9a-f]{8})", user_text(body))
        assert tag is not None
        weak, strong = PLANS[int(tag.group(1), 16) % 4]
        return LoopScript(weak_met=weak, strong_met=strong)._judge(body)


async def test_every_round_agrees_with_its_recorded_gate(
    scripted: Scripted, sources_dir: Path
) -> None:
    server = scripted(BySource())
    run = await run_loop(
        make_settings(sources_dir.parents[1], server.base_url, loop=Loop(max_rounds=3))
    )
    rounds = run.rounds
    assert inconsistent_rows(rounds).is_empty(), inconsistent_rows(rounds)
    decisions = set(rounds["decision"])  # the sample sources give all four; three make the point
    assert {"accepted", "too_easy", "failed_strong"} <= decisions, rounds["decision"].value_counts()
    # strong ran exactly for the candidates that passed the weak gate
    strong = pl.concat(
        pl.read_parquet(run.step_file(r, "strong_rollouts")) for r in sorted(set(rounds["round"]))
    )
    passed = rounds.filter(pl.col("decision").is_in(["accepted", "failed_strong"]))
    assert set(strong["candidate_id"]) == set(passed["candidate_id"])
    # a source stops at its first acceptance; the others use every round
    per = rounds.group_by("source_id").agg(
        pl.col("round").max(), (pl.col("decision") == "accepted").sum()
    )
    for row in per.iter_rows(named=True):
        assert row["decision"] <= 1
        if row["decision"] == 0:
            assert row["round"] == 3
    assert run.accepted.height == per["decision"].sum()


async def test_max_rounds_is_respected(scripted: Scripted, sources_dir: Path) -> None:
    server = scripted(LoopScript(strong_met=[True, False, False]))  # strong mean 0.25: never passes
    run = await run_loop(
        make_settings(sources_dir.parents[1], server.base_url, loop=Loop(max_rounds=2))
    )
    rounds = run.rounds
    assert rounds.height == 2 * N_SOURCES
    assert set(rounds["decision"]) == {"failed_strong"}
    per = rounds.group_by("source_id").agg(pl.col("round").sort())
    assert per["round"].to_list() == [[1, 2]] * N_SOURCES
    assert not run.round_dir(3).exists()
    assert chat_counts(server)["challenger"] == 2 * N_SOURCES
    # round 2 told the Challenger why round 1 failed
    second = challenger_prompts(server, 2)
    assert len(second) == N_SOURCES
    assert all("failed on strong (weak 0.25, strong 0.25, gap 0.00)" in text for text in second)
    assert run.accepted.is_empty()


async def test_a_source_whose_calls_keep_failing_stops_after_its_infra_retries(
    scripted: Scripted, sources_dir: Path
) -> None:
    server = scripted(lambda body: Reply(status=503, text="challenger is down"))
    settings = _with_role(
        make_settings(
            sources_dir.parents[1], server.base_url, loop=Loop(max_rounds=2, max_infra_retries=1)
        ),
        "challenger",
        max_retries=0,
    )
    run = await run_loop(settings)
    rounds = run.rounds
    assert set(rounds["decision"]) == {"infra_error"}
    assert rounds.group_by("source_id").len()["len"].to_list() == [2] * N_SOURCES  # 1 + 1 retry
    assert not run.round_dir(3).exists()
    assert chat_counts(server) == {
        "challenger": 2 * N_SOURCES,
        "verifier": 0,
        "weak": 0,
        "strong": 0,
        "judge": 0,
    }


class Arithmetic(LoopScript):
    """Verifiable mode: the reference answer is 42; weak answers 41, strong answers 42."""

    def __call__(self, body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        role = role_of(body)
        if role == "challenger":
            return challenger_item(body) | {
                "reference_answer": r"Two pipes: 1/6 + 1/7, so \boxed{42}."
            }
        if role in ("weak", "strong"):
            return f"Adding the rates.\nFinal answer: {41 if role == 'weak' else 42}"
        return super().__call__(body)


async def test_verifiable_mode_accepts_by_majority_vote_without_a_judge(
    scripted: Scripted, sources_dir: Path
) -> None:
    server = scripted(Arithmetic())
    settings = make_settings(
        sources_dir.parents[1], server.base_url, loop=Loop(mode="verifiable", max_rounds=1)
    )
    run = await run_loop(settings)
    assert run.rounds["decision"].to_list() == ["accepted"] * N_SOURCES
    assert run.rounds["control_gap"].null_count() == N_SOURCES
    assert set(run.rounds["weak_mean"]) == {0.0} and set(run.rounds["strong_mean"]) == {1.0}
    counts = chat_counts(server)
    assert counts["judge"] == 0 and counts["strong"] == 2 * 3 * N_SOURCES  # with fresh ones
    assert set(run.rounds["weak_vote"]) == {"41"} and set(run.rounds["answer_key"]) == {"42"}


def test_re_tuning_the_gate_recomputes_decisions_without_any_call(
    baseline: tuple[Run, int], tmp_path: Path
) -> None:
    """``finalize`` decides again from stored judgments; it opens no client (the URL is dead)."""
    done, _ = baseline
    root = tmp_path / "retuned"
    shutil.copytree(done.settings.paths.sources.parents[1], root)
    dead = "http://127.0.0.1:9/v1"
    strict = make_settings(root, dead, gate=Gate(min_gap=0.5))
    metrics = finalize(strict, "rev")
    rounds = pl.read_parquet(strict.paths.rounds_table)
    assert rounds["decision"].to_list() == ["failed_strong"] * N_SOURCES
    assert rounds["reason"].str.starts_with("gap 0.417 < 0.5").all()
    assert {json.loads(g)["min_gap"] for g in rounds["gate"]} == {0.5}
    assert metrics["accepted"] == 0 and pl.read_parquet(strict.paths.accepted_table).is_empty()
    easy = make_settings(root, dead, gate=Gate(weak_mean_max=0.2, weak_max_max=0.2))
    finalize(easy, "rev")
    assert set(pl.read_parquet(easy.paths.rounds_table)["decision"]) == {"too_easy"}
    finalize(done.settings.model_copy(update={"paths": strict.paths}), "rev")
    assert pl.read_parquet(strict.paths.rounds_table).equals(done.rounds)


def test_startup_objects_are_frozen_only_while_the_rounds_run() -> None:
    with _startup_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(KeyError), _startup_objects_frozen():
        raise KeyError("a failing round")
    assert gc.get_freeze_count() == 0  # a long-lived process can still collect them
