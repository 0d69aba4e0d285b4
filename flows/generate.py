"""The round loop (DESIGN §1) as a Prefect flow. It only orchestrates: every step is a task of its
stage's module in ``tasks/`` (challenge, solve, judge, accept) and every piece of data between
the steps is made in :mod:`tasks.generate`. Each step's output per round is a parquet file, so a
killed run resumes from what exists plus the per-call cache.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Callable, Iterator

import polars as pl
from prefect import flow
from rich.markup import escape

from autodata._killpoints import killpoint
from autodata.llm.backends import open_clients
from autodata.progress import Reporter
from autodata.settings import RoundFiles, Settings, StepFiles
from autodata.workdir import discard_failed_rounds
from tasks.accept import decide_task, weak_gate_task
from tasks.anchors import check_judge
from tasks.challenge import challenge_task
from tasks.draws import fresh_plan, plan_task
from tasks.generate import (
    Cast,
    LoopOutput,
    LoopTables,
    cast,
    last_round,
    open_sources,
    plan_round,
    read_sources,
    round_line,
    step_files,
    summary,
    work_key,
    write_outputs,
)
from tasks.judge import judge_task
from tasks.solve import solve_task


async def run_round(
    round_no: int, sources: pl.DataFrame, tables: LoopTables, parts: Cast, files: RoundFiles,
    steps: Callable[[int], StepFiles], reporter: Reporter,
) -> None:  # fmt: skip
    """One round over every open source: challenge → weak → (gate) → strong → decide → fresh
    re-scoring of what was accepted. The fixed gate draws its rollouts in two steps, the
    sequential one in batches until each candidate is settled (:mod:`tasks.draws`)."""
    challenges = await challenge_task(sources, tables.history(), round_no, parts.roles, files.challenges, reporter)  # fmt: skip
    draw = _draw_sequential(challenges, sources, round_no, parts, steps, reporter) if parts.sequential \
        else _draw_fixed(challenges, sources, round_no, parts, files, reporter)  # fmt: skip
    rollouts, judgments = await draw
    rounds = decide_task(challenges, judgments, parts.rules, files.rounds)
    fresh_r, fresh_j = await _rescore(challenges, sources, rounds, round_no, parts, files, reporter)
    tables.add(challenges, rollouts + fresh_r, judgments + fresh_j, rounds)


Drawn = tuple[list[pl.DataFrame], list[pl.DataFrame]]  # rollouts, judgments


async def _draw_fixed(challenges: pl.DataFrame, sources: pl.DataFrame, round_no: int, parts: Cast,
                      files: RoundFiles, reporter: Reporter) -> Drawn:  # fmt: skip
    weak = await solve_task(
        challenges, sources, round_no, parts.weak, files.weak_rollouts, reporter
    )
    weak_j = await judge_task(challenges, weak, round_no, parts.grader, files.weak_judgments, reporter, controls=True)  # fmt: skip
    passed = weak_gate_task(challenges, weak_j, parts.rules)
    strong = await solve_task(
        passed, sources, round_no, parts.strong, files.strong_rollouts, reporter
    )
    strong_j = await judge_task(passed, strong, round_no, parts.grader, files.strong_judgments, reporter, controls=False)  # fmt: skip
    return [weak, strong], [weak_j, strong_j]


async def _draw_sequential(challenges: pl.DataFrame, sources: pl.DataFrame, round_no: int, parts: Cast,
                           steps: Callable[[int], StepFiles], reporter: Reporter) -> Drawn:  # fmt: skip
    drawn: Drawn = ([], [])
    for step in itertools.count(1):
        plan = plan_task(challenges, drawn[1], parts.rules)
        if not plan:
            return drawn
        files = steps(step)._asdict()
        for role, draws in plan.items():
            rows = await solve_task(challenges, sources, round_no, parts.solver(role), files[f"{role}_rollouts"], reporter, plan=draws)  # fmt: skip
            graded = await judge_task(challenges, rows, round_no, parts.grader, files[f"{role}_judgments"], reporter,
                                      controls=step == 1 and role == "weak")  # fmt: skip
            drawn[0].append(rows)
            drawn[1].append(graded)
    return drawn


async def _rescore(challenges: pl.DataFrame, sources: pl.DataFrame, rounds: pl.DataFrame, round_no: int,
                   parts: Cast, files: RoundFiles, reporter: Reporter) -> Drawn:  # fmt: skip
    """The fresh re-scoring of the round's accepted items (new seeds; never part of a decision)."""
    plan, target = fresh_plan(rounds, parts.rules.rollouts), files._asdict()
    drawn: Drawn = ([], [])
    for role in ("weak", "strong") if plan else ():
        rows = await solve_task(challenges, sources, round_no, parts.solver(role), target[f"fresh_{role}_rollouts"], reporter, plan=plan, fresh=True)  # fmt: skip
        graded = await judge_task(challenges, rows, round_no, parts.grader, target[f"fresh_{role}_judgments"], reporter, controls=False)  # fmt: skip
        drawn[0].append(rows)
        drawn[1].append(graded)
    return drawn


async def _run_rounds(settings: Settings, sources: pl.DataFrame, work: str, reporter: Reporter
                      ) -> tuple[LoopTables, dict[str, dict[str, int]]]:  # fmt: skip
    """The rounds, until every source is closed; returns the tables and each role's calls."""
    tables, previous = LoopTables(), ""
    async with open_clients(settings, announce=lambda text: reporter.line(escape(text))) as clients:  # fmt: skip
        parts = cast(settings, clients)
        if not parts.rules.verifiable:
            await check_judge(settings.loop, settings.paths, clients["judge"], settings.models.judge, reporter)  # fmt: skip
        for round_no in range(1, last_round(settings.loop) + 1):
            open_now = open_sources(sources, tables.history(), settings.loop)
            if open_now.is_empty():
                break
            files, previous = plan_round(settings, work, round_no, open_now, previous)
            steps = step_files(settings, work, round_no, files)
            await run_round(round_no, open_now, tables, parts, files, steps, reporter)
            reporter.line(round_line(round_no, tables.history(), open_now.height))
            killpoint("loop:round-end")
        return tables, {role: client.stats.as_dict() for role, client in clients.items()}


@contextlib.contextmanager
def _startup_objects_frozen() -> Iterator[None]:
    """Everything alive at the start (imported modules, Prefect, settings) lives through the rounds:
    hiding it from the garbage collector makes each full collection ~60x cheaper (each one
    stalled the event loop for ~0.2 s while every slot waited; benchmarks/README.md). Unfrozen
    afterwards, so a long-lived process (scheduled refreshes) can still collect it."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@flow(name="generate", validate_parameters=False)
async def generate_flow(
    settings: Settings, sources: pl.DataFrame, reporter: Reporter
) -> LoopOutput:
    """Run rounds until every source is accepted or out of budget; write the stage's outputs."""
    work = work_key(sources)
    if (failed := discard_failed_rounds(settings.paths.work_dir(work))) is not None:
        reporter.line(f"rounds {failed}+ of an earlier run had failed model calls (infra_error): "
                      "running them again; their completed calls come from the cache")  # fmt: skip
    with _startup_objects_frozen():
        tables, calls = await _run_rounds(settings, sources, work, reporter)
    return write_outputs(settings, tables, calls)


async def generate_stage(settings: Settings, reporter: Reporter) -> dict[str, int]:
    """``autodata stage generate``: the loop over the sources table; what it made, in numbers."""
    return summary(await generate_flow(settings, read_sources(settings.paths), reporter))
