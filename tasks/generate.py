"""Stage: generate, the data around the round loop (DESIGN §1).

The loop itself is a Prefect flow that only orchestrates (:mod:`flows.generate`); its steps are
the challenge, solve, judge and accept stages. This module holds the rest: the loop's input
(the sources table, :func:`read_sources`), which sources are still open (:func:`open_sources`),
who plays each part (:class:`Cast`), where each round's files live and what they are keyed on
(:func:`work_key`, :func:`round_keys`), the tables the rounds add up to (:class:`LoopTables`) and
the stage's outputs (:func:`write_outputs`: the loop tables, ``Paths.calls_file`` and the recipe
snapshot).

**What a round's files are keyed on.** A file is read back on resume only if everything that
makes its content is unchanged, so each step's file sits in a folder named by a hash of exactly
that (:func:`round_keys`), chained: each key includes the key of the step before it, and a
round's first key the previous round's last (its decisions decide which sources are open and
what feedback the Challenger reads).

- challenges: the round, the open sources (ids and domains), the Challenger's and the
  verifier's model and sampling settings and prompt hashes;
- weak rollouts: + the weak solver's model, sampling and prompt hash, and ``rollouts``;
- weak judgments: + the judge's model, sampling and prompt hash (or exact match in verifiable
  mode), ``loop.mode`` and the non-answer control;
- strong rollouts: + the gate (it picks the candidates), the strong solver's, ``rollouts``;
- strong judgments: + the judge's; rounds: + the gate (it decides).

Left out, because they do not change a file's content: where and how a model is reached
(``base_url``, keys, concurrency, timeouts, retries: the per-call cache leaves them out too),
``loop.max_rounds`` and ``max_infra_retries`` (which rounds run: their effect is the open-source
set, which is keyed) and everything after the loop (validate, export). The work folder is keyed
on the source set only (:func:`work_key`). Every row of a file read back is therefore what this
run's recipe makes, and the loop tables carry this run's ``recipe_hash``.

Input: ``schemas.SOURCES``. Output: ``schemas.CHALLENGES``, ``ROLLOUTS``, ``JUDGMENTS`` and
``ROUNDS`` (the loop's own decisions), all rounds concatenated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from autodata import prompts, recipes, schemas
from autodata.errors import SourceError
from autodata.io import write_json, write_parquet
from autodata.llm.client import ChatClient
from autodata.settings import Loop, Paths, RoundFiles, Settings, StepFiles
from tasks import accept
from tasks.accept import Rules
from tasks.challenge import Roles
from tasks.judge import Grader
from tasks.solve import Solver


def read_sources(paths: Paths) -> pl.DataFrame:
    """The sources table written by ingest; a missing one says which stage to run."""
    path = paths.sources_table
    if not path.exists():
        raise SourceError(f"{path} not found; run `autodata stage ingest` (or `dvc repro`) first")
    return schemas.check(pl.read_parquet(path), schemas.SOURCES, "sources")


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


def last_round(loop: Loop) -> int:
    """The highest round number the budget allows (quality rounds + infra retries)."""
    return loop.max_rounds + loop.max_infra_retries


def work_key(sources: pl.DataFrame) -> str:
    """The work folder of a run: keyed by the source set (ids, which hash the text, and
    domains, which the Challenger reads)."""
    pairs = sorted(zip(sources["source_id"].to_list(), sources["domain"].to_list(), strict=True))
    return _digest(pairs)[:8]


def round_keys(
    settings: Settings, round_no: int, open_now: pl.DataFrame, previous: str
) -> dict[str, str]:
    """The content key of each of round ``round_no``'s files (module docstring), by step; the
    ``rounds`` key is the next round's ``previous``."""
    recipe, hashes = settings.recipe(), prompts.role_hashes(settings.prompts.overrides())
    verifiable = settings.loop.mode == "verifiable"

    def role(name: str) -> list[Any]:
        return [name, recipe["models"][name], hashes[name]]

    judging = [settings.loop.judge_protocol, settings.loop.judge_reference]  # how it is asked
    grader = "exact-match" if verifiable else [*role("judge"), *judging]
    keys = {"challenges": _digest([previous, round_no, work_key(open_now), role("challenger"), role("verifier")])}  # fmt: skip
    keys["weak_rollouts"] = _digest([keys["challenges"], role("weak"), recipe["rollouts"]])
    keys["weak_judgments"] = _digest([keys["weak_rollouts"], grader, recipe["loop"]["mode"], settings.loop.non_answer])  # fmt: skip
    keys["strong_rollouts"] = _digest([keys["weak_judgments"], recipe["gate"], role("strong"), recipe["rollouts"]])  # fmt: skip
    keys["strong_judgments"] = _digest([keys["strong_rollouts"], grader])
    keys["rounds"] = _digest([keys["strong_judgments"], recipe["gate"]])
    return keys


def plan_round(
    settings: Settings, work: str, round_no: int, open_now: pl.DataFrame, previous: str
) -> tuple[RoundFiles, str]:
    """Round ``round_no``'s files in work folder ``work``, and the key the next round chains on."""
    keys = round_keys(settings, round_no, open_now, previous)
    return settings.paths.round_files(work, round_no, keys), keys["rounds"]


def step_files(
    settings: Settings, work: str, round_no: int, files: RoundFiles
) -> Callable[[int], StepFiles]:
    """The sequential gate's files of each step of the round whose files are ``files``."""
    key = files.rounds.parent.name
    return lambda step: settings.paths.step_files(work, round_no, key, step)


def _digest(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Cast:
    """Who plays each part of a round, as values: challenger and verifier (:class:`Roles`), the
    two solvers, the judge (:class:`Grader`) and the rules the loop decides by (:class:`Rules`:
    the gate it searches under, the mode, the sequential gate's batches and caps)."""

    roles: Roles
    weak: Solver
    strong: Solver
    grader: Grader
    rules: Rules

    @property
    def sequential(self) -> bool:
        """Whether rollouts are drawn in batches (``gate.method: sequential``, rubric mode)."""
        return self.rules.gate.method == "sequential" and not self.rules.verifiable

    def solver(self, role: str) -> Solver:
        return self.weak if role == "weak" else self.strong


def cast(settings: Settings, clients: Mapping[str, ChatClient]) -> Cast:
    """The :class:`Cast` of ``settings`` with the open ``clients`` (one per role)."""
    models, k, rules = settings.models, settings.rollouts, Rules.of(settings)
    tolerance = rules.gate.answer_tolerance if rules.verifiable else None
    roles = Roles(clients["challenger"], models.challenger, clients["verifier"], models.verifier,
                  settings.recipe_hash(), settings.prompts.overrides(), tolerance)  # fmt: skip
    return Cast(
        roles,
        Solver("weak", k.weak, clients["weak"], models.weak, rules.verifiable),
        Solver("strong", k.strong, clients["strong"], models.strong, rules.verifiable),
        Grader(
            clients["judge"],
            models.judge,
            settings.loop.non_answer,
            rules.verifiable,
            rules.gate.answer_tolerance,
            settings.loop.judge_protocol,
            settings.loop.judge_reference,
        ),
        rules,
    )


@dataclass
class LoopTables:
    """Everything the loop produced, all rounds concatenated."""

    challenges: list[pl.DataFrame] = field(default_factory=list)
    rollouts: list[pl.DataFrame] = field(default_factory=list)
    judgments: list[pl.DataFrame] = field(default_factory=list)
    rounds: list[pl.DataFrame] = field(default_factory=list)

    def add(self, challenges: pl.DataFrame, rollouts: list[pl.DataFrame],
            judgments: list[pl.DataFrame], rounds: pl.DataFrame) -> None:  # fmt: skip
        """Keep one round's tables."""
        self.challenges.append(challenges)
        self.rollouts.append(schemas.concat(rollouts, schemas.ROLLOUTS))
        self.judgments.append(schemas.concat(judgments, schemas.JUDGMENTS))
        self.rounds.append(rounds)

    def history(self) -> pl.DataFrame:
        """The ``rounds`` rows so far (what the next round's feedback and open sources read)."""
        return schemas.concat(self.rounds, schemas.ROUNDS)

    def frames(self) -> dict[str, pl.DataFrame]:
        pairs = [("challenges", self.challenges, schemas.CHALLENGES), ("rollouts", self.rollouts, schemas.ROLLOUTS),
                 ("judgments", self.judgments, schemas.JUDGMENTS), ("loop_rounds", self.rounds, schemas.ROUNDS)]  # fmt: skip
        return {name: schemas.concat(parts, schema) for name, parts, schema in pairs}


def round_line(round_no: int, history: pl.DataFrame, n_open: int) -> str:
    """The status line after a round: its number, the sources it ran on, the totals so far."""
    counts = accept.decision_counts(history)
    shown = " · ".join(f"{k} {v}" for k, v in counts.items() if v)
    return f"[bold]round {round_no}[/] done ({n_open} sources open) — totals: {shown}"


class LoopOutput(dict[str, pl.DataFrame]):
    """The loop tables by name, and ``calls``: this run's call counts per role (its own, not
    read back from ``Paths.calls_file``, which the next run in the project overwrites)."""

    def __init__(self, frames: dict[str, pl.DataFrame], calls: dict[str, dict[str, int]]) -> None:
        super().__init__(frames)
        self.calls = calls


def write_outputs(
    settings: Settings, tables: LoopTables, calls: dict[str, dict[str, int]]
) -> LoopOutput:
    """Write the stage's outputs: the loop tables (stamped with this run's ``recipe_hash``),
    the call counts and the recipe snapshot."""
    frames, paths = tables.frames(), settings.paths
    for name in ("challenges", "loop_rounds"):  # files read back are what this recipe makes
        frames[name] = frames[name].with_columns(recipe_hash=pl.lit(settings.recipe_hash()))
    targets = {"challenges": paths.challenges_table, "rollouts": paths.rollouts_table,
               "judgments": paths.judgments_table, "loop_rounds": paths.loop_rounds_table}  # fmt: skip
    for name, frame in frames.items():
        write_parquet(frame, targets[name])
    write_json(calls, paths.calls_file)
    recipes.write_snapshot(settings)
    return LoopOutput(frames, calls)


def summary(loop: LoopOutput) -> dict[str, int]:
    """What ``autodata stage generate`` reports: candidates, rounds, HTTP requests."""
    return {
        "candidates": loop["challenges"].height,
        "rounds": int(loop["loop_rounds"]["round"].max() or 0),  # type: ignore[arg-type]
        "http_requests": sum(c.get("calls", 0) for c in loop.calls.values()),
    }
