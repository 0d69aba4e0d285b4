"""The round loop with the sequential gate (``gate.method: sequential``) against the scripted
server: rollouts drawn in batches until each candidate is settled, every score and the evidence
at the decision on the rounds rows, the fresh re-scoring of what was accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from conftest import make_settings

from autodata.progress import Reporter
from autodata.settings import Gate, Loop, Rollouts, Validate
from autodata.testing.roles import LoopScript, request_role_counts
from autodata.testing.scripted_server import ScriptedServer
from flows.generate import generate_flow
from tasks.accept import finalize
from tasks.gate_sequential import zone_verdict
from tasks.ingest import ingest_to_files
from tasks.validate import validate

pytestmark = pytest.mark.usefixtures("prefect_harness")
Scripted = Callable[..., ScriptedServer]
SEQ = Gate(method="sequential")


def run(root: Path, server: ScriptedServer, **sections: object) -> pl.DataFrame:
    settings = make_settings(root, server.base_url, gate=SEQ, **sections)
    ingest_to_files(settings.paths, settings.ingest)
    sources = pl.read_parquet(settings.paths.sources_table)
    asyncio.run(generate_flow(settings, sources, Reporter(quiet=True)))
    finalize(settings, "rev")
    rounds = pl.read_parquet(settings.paths.rounds_table)
    accepted = pl.read_parquet(settings.paths.accepted_table)
    report = validate(accepted, rounds, Validate(), None)  # sequential rows pass the gate's suite
    assert report.success, [e.name for e in report.failed]
    return rounds


def first_inside(weak: float, strong: float, gate: Gate, caps: Rollouts) -> tuple[int, int]:
    """(weak, strong) rollouts after which a candidate with these constant scores is accepted."""
    for n in range(caps.first, caps.max_strong + 1):
        w = min(n, caps.max_weak)
        if zone_verdict([weak] * w, [strong] * n, gate).status == "inside":
            return w, n
    raise AssertionError("never accepted")


def test_a_clear_candidate_is_accepted_once_the_evidence_is_in(scripted: Scripted, sources_dir: Path) -> None:  # fmt: skip
    server = scripted(LoopScript())  # weak 3/12 and strong 8/12 on every rollout
    rounds = run(sources_dir.parents[1], server)
    caps = Rollouts()
    n_weak, n_strong = first_inside(0.25, round(8 / 12, 9), SEQ, caps)
    assert rounds["decision"].to_list() == ["accepted"] * rounds.height
    assert set(rounds["weak_n"]) == {n_weak} and set(rounds["strong_n"]) == {n_strong}
    assert (rounds["prob_zone"] >= SEQ.confidence).all()
    assert rounds["weak_scores"].to_list()[0] == [0.25] * n_weak
    assert (rounds["strong_low"] < round(8 / 12, 9)).all() and (rounds["strong_high"] > 0.67).all()
    assert set(rounds["fresh_gap"]) == {round(5 / 12, 9)}
    counts = request_role_counts(server.requests)
    fresh = caps.fresh * rounds.height
    assert counts["weak"] == n_weak * rounds.height + fresh
    assert counts["strong"] == n_strong * rounds.height + fresh


def test_a_clearly_easy_candidate_stops_after_the_first_batch(scripted: Scripted, sources_dir: Path) -> None:  # fmt: skip
    server = scripted(LoopScript(weak_met=[True, True, True]))
    rounds = run(sources_dir.parents[1], server, loop=Loop(max_rounds=1))
    assert set(rounds["decision"]) == {"too_easy"}
    assert rounds["reason"].str.contains("weak_futility").all()
    assert set(rounds["weak_n"]) == {Rollouts().first} and set(rounds["strong_n"]) == {0}
    counts = request_role_counts(server.requests)
    assert counts["weak"] == Rollouts().first * rounds.height and "strong" not in counts


def test_a_candidate_with_no_gap_is_given_up(scripted: Scripted, sources_dir: Path) -> None:
    server = scripted(LoopScript(strong_met=[True, False, False]))  # strong = weak = 3/12
    rounds = run(sources_dir.parents[1], server, loop=Loop(max_rounds=1))
    assert set(rounds["decision"]) == {"failed_strong"}
    assert rounds["reason"].str.contains("<= futility").all()
    assert (rounds["strong_n"] < Rollouts().max_strong).all()


def test_a_round_in_which_no_candidate_passes_quality_draws_nothing(scripted: Scripted, sources_dir: Path) -> None:  # fmt: skip
    """Nothing to solve in a step (every item failed quality): the round is decided on no
    judgments at all, not stopped by an empty concatenation (it was, on the real 135M)."""
    leaks = {"leak": True, "clear": True, "rubric_ok": True, "reason": "the context states it"}
    server = scripted(LoopScript(verifier=leaks))
    rounds = run(sources_dir.parents[1], server, loop=Loop(max_rounds=2))
    assert set(rounds["decision"]) == {"failed_quality"} and set(rounds["round"]) == {1, 2}
    assert set(rounds["weak_n"]) == {0} and set(rounds["strong_n"]) == {0}
    assert set(request_role_counts(server.requests)) == {"challenger", "verifier"}
