"""Verifiable mode end to end on the math sample set (``data/sources_math``, known answers in
front matter): the whole pipeline on the scripted server, through validation to export."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import REPO, make_settings

from autodata.progress import Reporter
from autodata.settings import Loop
from autodata.testing.replies import Reply
from autodata.testing.roles import LoopScript, role_of, user_text
from autodata.testing.scripted_server import ScriptedServer
from flows.pipeline import run_flow

pytestmark = pytest.mark.usefixtures("prefect_harness")
Scripted = Callable[..., ScriptedServer]
MATH = REPO / "data" / "sources_math"
# the strong solver (it sees the source) states each known answer in another notation
NOTATION = {"5/36": r"\boxed{\frac{5}{36}}", "15%": "0.15", "30,000": "30000", "0.125": "1/8"}


class MathScript(LoopScript):
    """A challenger that asks the source's question (wrongly the first time on the average
    speed: 50 instead of 48), a weak solver that only knows the price rise (15, which is 15%),
    a strong solver that reads the known answer from the source."""

    def __call__(self, body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        role, text = role_of(body), user_text(body)
        source = text.split("<source>", 1)[-1].split("</source>", 1)[0]
        known = re.findall(r"Final answer: (.+)", source)
        if role == "challenger":
            answer = "50" if "cyclist" in text and body.get("seed") == 1 else known[-1].strip()
            question = re.search(r"Question: (.+)", source)
            return {"context": "A worked problem: the set-up of the source, without its solution.",
                    "question": question.group(1) if question else "What is the value asked for?",
                    "reference_answer": f"Worked out step by step.\nFinal answer: {answer}",
                    "question_type": "calculation", "reasoning_skills": ["arithmetic"],
                    "rubric": [{"criterion": "States the final value", "weight": 1}]}  # fmt: skip
        if role == "weak":
            return "Guessing.\nFinal answer: " + ("15" if "percentage" in text else "7")
        if role == "strong":
            return "From the document.\nFinal answer: " + NOTATION.get(known[-1], known[-1])
        return super().__call__(body)


def test_verifiable_mode_exports_the_math_sample(scripted: Scripted, tmp_path: Path) -> None:
    shutil.copytree(MATH, tmp_path / "data" / "sources")
    server = scripted(MathScript())
    settings = make_settings(tmp_path, server.base_url, loop=Loop(mode="verifiable", max_rounds=2))
    result = asyncio.run(run_flow(settings, Reporter(quiet=True)))
    paths = settings.paths
    assert result["accepted"] == 5  # every source but the price rise, which the weak solver knows
    assert json.loads(paths.validation_metrics.read_text())["success"] is True
    sft = [json.loads(line) for line in (paths.export / "sft.jsonl").read_text().splitlines()]
    assert len(sft) == 5

    rounds = pl.read_parquet(paths.rounds_table)
    by_reason = dict(zip(rounds["decision"], rounds["reason"], strict=True))
    assert "is not the source's known answer '48'" in by_reason["failed_quality"]
    assert "the weak majority answer 15 is right" in by_reason["too_easy"]
    accepted = pl.read_parquet(paths.accepted_table)
    assert set(accepted["mode"]) == {"verifiable"} and accepted["control_gap"].null_count() == 5
    assert set(accepted["weak_vote"]) == {"7"} and set(accepted["weak_min"]) == {0.0}
    assert set(accepted["strong_mean"]) == {1.0}
    assert set(accepted["answer_key"]) == {"48", "5/36", "30,000", "12", "0.125"}

    solver_prompts = [m["content"] for r in server.requests if r.path.endswith("/chat/completions")
                      and role_of(r.body) == "weak" for m in r.body["messages"] if m["role"] == "system"]  # fmt: skip
    assert solver_prompts and all("Final answer: <answer>" in p for p in solver_prompts)
