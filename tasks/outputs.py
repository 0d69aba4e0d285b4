"""Stage: accept (final). From the loop's stored tables, recompute every decision under the
current gate (no LLM call), pick the first accepted round per source, attach lineage, and
compute the run's metrics.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from autodata import prompts, schemas
from autodata._killpoints import killpoint
from autodata.io import write_json, write_parquet
from autodata.settings import ROLES, Gate, Settings
from autodata.stagefile import read_or_empty
from tasks import accept

LOOP_TABLES = {
    "challenges": schemas.CHALLENGES,
    "rollouts": schemas.ROLLOUTS,
    "judgments": schemas.JUDGMENTS,
    "loop_rounds": schemas.ROUNDS,
}


def final_rounds(
    challenges: pl.DataFrame,
    judgments: pl.DataFrame,
    loop_rounds: pl.DataFrame,
    gate: Gate,
    *,
    verifiable: bool,
) -> pl.DataFrame:
    """Decisions under ``gate``. Where the strong solver never ran (the loop's gate stopped the
    candidate at the weak step) the loop's own decision and its recorded gate are kept."""
    fresh = accept.decide(challenges, judgments, gate, verifiable=verifiable)
    kept = loop_rounds.filter(
        pl.col("candidate_id").is_in(
            fresh.filter(pl.col("decision") == accept.PENDING)["candidate_id"].implode()
        )
    )
    fresh = fresh.filter(pl.col("decision") != accept.PENDING)
    return schemas.check(
        pl.concat([fresh, kept]).sort("source_id", "round"), schemas.ROUNDS, "rounds"
    )


def accepted_rows(
    rounds: pl.DataFrame, challenges: pl.DataFrame, sources: pl.DataFrame, lineage: dict[str, str]
) -> pl.DataFrame:
    """One row per source that was accepted (its first accepted round), with lineage columns.

    ``lineage`` gives the model ids (challenger_model, weak_model, strong_model, judge_model),
    the prompt hash and the git revision.
    """
    used = rounds.group_by("source_id").agg(rounds_used=pl.col("round").max())
    first = (
        rounds.filter(pl.col("decision") == "accepted")
        .sort("round")
        .unique("source_id", keep="first")
    )
    item_cols = [
        "candidate_id",
        "context",
        "reference_answer",
        "question_type",
        "reasoning_skills",
        "rubric",
    ]
    frame = (
        first.join(challenges.select(item_cols), on="candidate_id")
        .join(sources.select("source_id", "domain"), on="source_id", how="left")
        .join(used, on="source_id")
        .with_columns(**{k: pl.lit(v, dtype=pl.String) for k, v in lineage.items()})
    )
    return schemas.check(frame.sort("source_id"), schemas.ACCEPTED, "accepted")


def metrics(
    rounds: pl.DataFrame,
    accepted: pl.DataFrame,
    n_sources: int,
    calls: dict[str, dict[str, int]],
    rollouts: pl.DataFrame,
) -> dict[str, Any]:
    """The numbers of ``metrics/generate.json``."""
    n_acc = accepted.height
    requests = sum(c.get("calls", 0) for c in calls.values())
    logical = sum(
        c.get("calls", 0) - c.get("retries", 0) + c.get("cache_hits", 0) for c in calls.values()
    )
    return {
        "sources": n_sources,
        "candidates": rounds.height,
        "accepted": n_acc,
        "acceptance_rate": round(n_acc / n_sources, 4) if n_sources else 0.0,
        "mean_rounds_per_accepted": round(float(accepted["round"].mean()), 3) if n_acc else None,  # type: ignore[arg-type]
        "decisions": accept.decision_counts(rounds),
        "llm": {
            "per_role": calls,
            "http_requests": requests,
            "logical_calls": logical,
            "calls_per_accepted": round(logical / n_acc, 2) if n_acc else None,
        },
        "solver_tokens": {
            role: {"in": int(g["tokens_in"].sum()), "out": int(g["tokens_out"].sum())}
            for (role,), g in rollouts.group_by("role")
        },
    }


def lineage_columns(models: dict[str, str], prompt_hash: str, git_rev: str) -> dict[str, str]:
    """The constant lineage columns of ``accepted``."""
    return {f"{role}_model": models[role] for role in ("challenger", "weak", "strong", "judge")} | {
        "prompt_hash": prompt_hash,
        "git_rev": git_rev,
    }


def gate_of(row_gate: str) -> Gate:
    """The :class:`Gate` a row was decided under (its ``gate`` JSON column)."""
    return Gate(**json.loads(row_gate))


def finalize(
    settings: Settings, git_rev: str, calls: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    """Read the loop's tables, write ``rounds``, ``accepted`` and ``metrics/generate.json``.

    ``calls``: this run's call counts per role; None reads ``calls.json`` (the generate stage's).
    """
    paths = settings.paths
    read = {
        name: read_or_empty(paths.interim / f"{name}.parquet", schema, name)
        for name, schema in LOOP_TABLES.items()
    }
    sources = read_or_empty(paths.sources_table, schemas.SOURCES, "sources")
    verifiable = settings.loop.mode == "verifiable"
    rounds = final_rounds(
        read["challenges"],
        read["judgments"],
        read["loop_rounds"],
        settings.gate,
        verifiable=verifiable,
    )
    models = {role: settings.models.role(role).model for role in ROLES}
    lineage = lineage_columns(models, prompts.prompt_hash(), git_rev)
    accepted = accepted_rows(rounds, read["challenges"], sources, lineage)
    if calls is None:
        calls_file = paths.interim / "calls.json"
        calls = json.loads(calls_file.read_text()) if calls_file.exists() else {}
    result = metrics(rounds, accepted, sources.height, calls, read["rollouts"])
    killpoint("finalize:before-write")
    write_parquet(rounds, paths.rounds_table)
    write_parquet(accepted, paths.accepted_table)
    write_json(result, paths.generate_metrics)
    return result
