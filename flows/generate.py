"""The round loop (DESIGN §1) as a Prefect flow. It only orchestrates: every stage is a task in
``tasks/``; each stage's output per round is a parquet file, so a killed run resumes from what
exists plus the per-call cache.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from prefect import flow
from rich.markup import escape

from autodata import schemas
from autodata._killpoints import killpoint
from autodata.io import write_json, write_parquet
from autodata.llm.backends import open_clients
from autodata.llm.client import ChatClient
from autodata.progress import Reporter
from autodata.settings import Loop, Settings
from autodata.workdir import discard_failed_rounds
from tasks import accept
from tasks.challenge import Roles, challenge_task
from tasks.judge import judge_task
from tasks.solve import solve_task


@dataclass
class LoopTables:
    """Everything the loop produced, all rounds concatenated."""

    challenges: list[pl.DataFrame] = field(default_factory=list)
    rollouts: list[pl.DataFrame] = field(default_factory=list)
    judgments: list[pl.DataFrame] = field(default_factory=list)
    rounds: list[pl.DataFrame] = field(default_factory=list)

    def history(self) -> pl.DataFrame:
        return pl.concat(self.rounds) if self.rounds else schemas.empty(schemas.ROUNDS)

    def frames(self) -> dict[str, pl.DataFrame]:
        pairs = [("challenges", self.challenges, schemas.CHALLENGES), ("rollouts", self.rollouts, schemas.ROLLOUTS),
                 ("judgments", self.judgments, schemas.JUDGMENTS), ("loop_rounds", self.rounds, schemas.ROUNDS)]  # fmt: skip
        return {
            name: pl.concat(parts) if parts else schemas.empty(schema)
            for name, parts, schema in pairs
        }


def open_sources(sources: pl.DataFrame, history: pl.DataFrame, loop: Loop) -> pl.DataFrame:
    """Sources not yet accepted, with quality rounds and infra retries left."""
    if history.is_empty():
        return sources
    infra = pl.col("decision") == "infra_error"
    per = history.group_by("source_id").agg(
        accepted=(pl.col("decision") == "accepted").any(), quality=(~infra).sum(), infra=infra.sum()
    )
    closed = per.filter(
        pl.col("accepted")
        | (pl.col("quality") >= loop.max_rounds)
        | (pl.col("infra") > loop.max_infra_retries)
    )
    return sources.filter(~pl.col("source_id").is_in(closed["source_id"].implode()))


def work_dir(settings: Settings, sources: pl.DataFrame) -> Path:
    """Per-round files live under a directory keyed by the recipe and the source set."""
    digest = hashlib.sha256("".join(sorted(sources["source_id"].to_list())).encode()).hexdigest()[
        :8
    ]
    return settings.paths.interim / "work" / f"{settings.recipe_hash()}-{digest}"


async def run_round(
    round_no: int,
    sources: pl.DataFrame,
    tables: LoopTables,
    clients: Mapping[str, ChatClient],
    settings: Settings,
    reporter: Reporter,
    directory: Path,
) -> None:
    """One round over every open source: challenge → weak → (gate) → strong → decide."""
    models, gate, verifiable = settings.models, settings.gate, settings.loop.mode == "verifiable"
    roles = Roles(
        clients["challenger"],
        models.challenger,
        clients["verifier"],
        models.verifier,
        settings.recipe_hash(),
        settings.prompts.overrides(),
    )
    challenges = await challenge_task(
        sources, tables.history(), round_no, roles, directory / "challenges.parquet", reporter
    )
    items = challenges.filter(pl.col("qv_passed")).join(
        sources.select("source_id", "text"), on="source_id"
    )
    weak = await solve_task(
        items,
        "weak",
        settings.rollouts.weak,
        clients["weak"],
        models.weak,
        directory / "weak_rollouts.parquet",
        reporter,
    )
    weak_j = await _judge(
        items,
        weak,
        clients,
        settings,
        directory / "weak_judgments.parquet",
        reporter,
        controls=True,
    )
    pending = accept.decide(challenges, weak_j, gate, verifiable=verifiable).filter(
        pl.col("decision") == accept.PENDING
    )
    strong_items = items.filter(pl.col("candidate_id").is_in(pending["candidate_id"].implode()))
    strong = await solve_task(
        strong_items,
        "strong",
        settings.rollouts.strong,
        clients["strong"],
        models.strong,
        directory / "strong_rollouts.parquet",
        reporter,
    )
    strong_j = await _judge(
        strong_items,
        strong,
        clients,
        settings,
        directory / "strong_judgments.parquet",
        reporter,
        controls=False,
    )
    judgments = pl.concat([weak_j, strong_j])
    rounds = accept.decide(challenges, judgments, gate, verifiable=verifiable)
    write_parquet(rounds, directory / "rounds.parquet")
    tables.challenges.append(challenges)
    tables.rollouts.append(pl.concat([weak, strong]))
    tables.judgments.append(judgments)
    tables.rounds.append(rounds)


async def _judge(items: pl.DataFrame, rollouts: pl.DataFrame, clients: Mapping[str, ChatClient], settings: Settings,
                 target: Path, reporter: Reporter, *, controls: bool) -> pl.DataFrame:  # fmt: skip
    if settings.loop.mode == "verifiable":
        return accept.score_verifiable(items, rollouts)
    return await judge_task(items, rollouts, clients["judge"], settings.models.judge, settings.loop.non_answer,
                            target, reporter, controls=controls)  # fmt: skip


def _round_line(round_no: int, tables: LoopTables, n_open: int) -> str:
    counts = accept.decision_counts(tables.history())
    shown = " · ".join(f"{k} {v}" for k, v in counts.items() if v)
    return f"[bold]round {round_no}[/] done ({n_open} sources open) — totals: {shown}"


async def _run_rounds(settings: Settings, sources: pl.DataFrame, tables: LoopTables, directory: Path,
                      reporter: Reporter) -> dict[str, dict[str, int]]:  # fmt: skip
    """The rounds, until every source is closed; returns each role's call counts."""
    last_round = settings.loop.max_rounds + settings.loop.max_infra_retries
    async with open_clients(settings, announce=lambda text: reporter.line(escape(text))) as clients:  # fmt: skip
        for round_no in range(1, last_round + 1):
            open_now = open_sources(sources, tables.history(), settings.loop)
            if open_now.is_empty():
                break
            directory_of_round = directory / f"round_{round_no:02d}"
            await run_round(round_no, open_now, tables, clients, settings, reporter, directory_of_round)  # fmt: skip
            reporter.line(_round_line(round_no, tables, open_now.height))
            killpoint("loop:round-end")
        return {role: client.stats.as_dict() for role, client in clients.items()}


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


class LoopOutput(dict[str, pl.DataFrame]):
    """The loop tables by name, and ``calls``: this run's call counts per role (its own, not
    read back from ``calls.json``, which the next run in the project overwrites)."""

    def __init__(self, frames: dict[str, pl.DataFrame], calls: dict[str, dict[str, int]]) -> None:
        super().__init__(frames)
        self.calls = calls


@flow(name="generate", validate_parameters=False)
async def generate_flow(
    settings: Settings, sources: pl.DataFrame, reporter: Reporter
) -> LoopOutput:
    """Run rounds until every source is accepted or out of budget; write the loop tables."""
    directory, tables = work_dir(settings, sources), LoopTables()
    if (failed := discard_failed_rounds(directory)) is not None:
        reporter.line(f"rounds {failed}+ of an earlier run had failed model calls (infra_error): "
                      "running them again; their completed calls come from the cache")  # fmt: skip
    with _startup_objects_frozen():
        calls = await _run_rounds(settings, sources, tables, directory, reporter)
    frames = tables.frames()
    for name, frame in frames.items():
        write_parquet(frame, settings.paths.interim / f"{name}.parquet")
    write_json(calls, settings.paths.interim / "calls.json")
    return LoopOutput(frames, calls)
