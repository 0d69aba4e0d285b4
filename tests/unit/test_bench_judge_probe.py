"""benchmarks/judge_probe.py against the scripted server: every item gets its reference, its
non-answer and each solver rollout graded once, per-answer (no figure of a real model asserted)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import polars as pl

from autodata.testing.roles import RUBRIC, LoopScript
from autodata.testing.scripted_server import ScriptedServer
from benchmarks import judge_probe


def _run_dir(root: Path) -> Path:
    step = root / "data/interim/work/w/round_01/k"
    step.mkdir(parents=True)
    pl.DataFrame([{"candidate_id": "c1", "source_id": "s1", "qv_passed": True, "context": "Facts.",
                   "question": "Is the buyer entitled to terminate?", "reference_answer": "Yes: notice was timely.",
                   "rubric": RUBRIC}]).write_parquet(step / "challenges.parquet")  # fmt: skip
    (root / "data/processed").mkdir(parents=True)
    pl.DataFrame({"source_id": ["s1"], "text": ["The source."]}).write_parquet(root / "data/processed/sources.parquet")  # fmt: skip
    return root


def test_the_probe_grades_reference_non_answer_and_each_rollout(tmp_path: Path) -> None:
    with ScriptedServer(LoopScript(weak_met=[True, False, False])) as server:
        args = argparse.Namespace(run=str(_run_dir(tmp_path)), judge=(server.base_url, "scripted"),
                                  solver=(server.base_url, "scripted"), privileged=False, reference=True, rollouts=2)  # fmt: skip
        rows = asyncio.run(judge_probe.probe(args))
        judged = [
            r.body
            for r in server.requests
            if "RubricVerdicts" in str(r.body.get("response_format"))
        ]
    scores = {(r["who"], r["score"]) for r in rows}
    assert sorted(r["who"] for r in rows) == ["null", "ref", "solver", "solver"]
    assert scores == {("ref", 1.0), ("null", 0.0), ("solver", 3 / 12)}
    assert len(judged) == 4 and all("<reference>" in b["messages"][-1]["content"] for b in judged)
