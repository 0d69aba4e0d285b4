"""Judge drift: a small fixed set of (answer, criterion, expected verdict) anchors, graded by the
judge at the start of every run with the same prompt and protocol as every rollout
(``loop.judge_protocol``: an anchor is a one-criterion rubric for the per-answer judge), stored,
and compared. Anchors carry no reference answer, so they are graded blind even when
``loop.judge_reference`` shows rollouts' judges the reference.

A model or prompt change that silently degrades grading shows up here before it costs a run:
the share of anchors on which the judge gives the expected verdict falls. Below
``loop.anchor_min_agreement`` the run stops with one line (:class:`JudgeDrift`). The packaged
set (``autodata/anchors/judge.jsonl``, 12 anchors, half expecting "yes") is clear-cut on
purpose: a usable judge agrees on all of them; one that says "yes" to everything agrees on half.
Graded calls go through the per-call cache, so an unchanged judge costs nothing on a rerun.
The check runs when ``loop.anchor_min_agreement`` is above 0 (rubric mode: verifiable mode has no
judge); it is off by default because the embedded 135M judge agrees on half the anchors and the
embedded run is a smoke test of the pipeline, not of the judge.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from autodata import schemas
from autodata.errors import CallError, ConfigError, JudgeDrift
from autodata.io import write_parquet
from autodata.llm.client import ChatClient
from autodata.progress import Reporter
from autodata.settings import Loop, Paths, RoleModel
from tasks.judge import Protocol, judge_request, rubric_request, rubric_verdicts, verdict

FIELDS = ("id", "context", "question", "answer", "criterion", "expected")


def packaged_anchors() -> Path:
    """The anchor set that ships with autodata."""
    return Path(str(resources.files("autodata").joinpath("anchors", "judge.jsonl")))


def load_anchors(path: Path | None) -> list[dict[str, Any]]:
    """The anchors in ``path`` (JSON lines with :data:`FIELDS`; None: the packaged set)."""
    path = path or packaged_anchors()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read judge anchors ({exc}); fix loop.judge_anchors") from None  # fmt: skip
    bad = [i + 1 for i, r in enumerate(rows) if not _valid(r)]
    if bad or not rows:
        where = f"line {bad[0]}" if bad else "no anchors"
        raise ConfigError(
            f"{path}: {where}: each judge anchor needs {', '.join(FIELDS)} (expected true/false); "
            "fix the file or loop.judge_anchors"
        )
    return rows


def _valid(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and all(k in row for k in FIELDS)
        and isinstance(row["expected"], bool)
        and all(isinstance(row[k], str) and row[k].strip() for k in FIELDS[:5])
    )


def _request(anchor: dict[str, Any], spec: RoleModel, protocol: Protocol) -> Any:
    if protocol == "per_criterion":
        return judge_request(anchor, anchor["answer"], anchor["criterion"], spec)
    item = anchor | {"rubric": [{"criterion": anchor["criterion"], "weight": 1}], "reference_answer": ""}  # fmt: skip
    return rubric_request(item, anchor["answer"], spec)


async def grade_anchors(
    anchors: list[dict[str, Any]], client: ChatClient, spec: RoleModel,
    protocol: Protocol = "per_answer",
) -> pl.DataFrame:  # fmt: skip
    """One judge verdict per anchor (``schemas.ANCHOR_GRADES``), asked as ``protocol`` asks it
    (``p_yes`` only per criterion, where the reply's log-probabilities give it); a failed call
    is a row."""

    async def one(anchor: dict[str, Any]) -> dict[str, Any]:
        row = {
            "anchor_id": anchor["id"],
            "expected": anchor["expected"],
            "judge_model": client.model,
        }
        try:
            result = await client.chat(_request(anchor, spec, protocol))
            met, p_yes = verdict(result) if protocol == "per_criterion" else (rubric_verdicts(result, 1)[0], None)  # fmt: skip
        except CallError as exc:
            return row | {"met": None, "p_yes": None, "call_status": "infra_error", "error": str(exc)}  # fmt: skip
        return row | {"met": met, "p_yes": p_yes, "call_status": "ok", "error": ""}

    rows = await asyncio.gather(*(one(a) for a in anchors))
    frame = pl.DataFrame(rows, schema=schemas.ANCHOR_GRADES)
    return schemas.check(frame, schemas.ANCHOR_GRADES, "judge_anchors")


def agreement(grades: pl.DataFrame) -> tuple[int, int]:
    """(anchors the judge agreed on, anchors it graded); failed calls are not counted."""
    graded = grades.filter(pl.col("call_status") == "ok")
    return int((graded["met"] == graded["expected"]).sum()), graded.height


async def check_judge(
    loop: Loop, paths: Paths, client: ChatClient, spec: RoleModel, reporter: Reporter
) -> None:
    """Grade the anchors, write ``paths.anchors_table``, report one line; raise
    :class:`JudgeDrift` below ``loop.anchor_min_agreement`` (nothing at all when it is 0)."""
    if loop.anchor_min_agreement <= 0:
        return
    anchors = load_anchors(loop.judge_anchors)
    grades = await grade_anchors(anchors, client, spec, loop.judge_protocol)
    write_parquet(grades, paths.anchors_table)
    reporter.line(check_drift(grades, loop.anchor_min_agreement, client.model))


def check_drift(grades: pl.DataFrame, min_agreement: float, model: str) -> str:
    """One summary line; raises :class:`JudgeDrift` when agreement is below ``min_agreement``."""
    agreed, graded = agreement(grades)
    if not graded:
        return f"judge anchors: none graded ({grades.height} calls failed)"
    share = agreed / graded
    line = f"judge anchors: {model} agreed on {agreed} of {graded} ({share:.0%})"
    if share < min_agreement:
        wrong = grades.filter(
            (pl.col("call_status") == "ok") & (pl.col("met") != pl.col("expected"))
        )
        raise JudgeDrift(
            f"{line}, below loop.anchor_min_agreement {min_agreement:.0%} (wrong on "
            f"{', '.join(wrong['anchor_id'].to_list()[:5])}): check models.judge (model, prompt, "
            "max_tokens) or lower loop.anchor_min_agreement"
        )
    return line
