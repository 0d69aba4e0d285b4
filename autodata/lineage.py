"""Lineage: where a row came from, and how recipe versions compare. Pure functions over frames.

``autodata lineage <id>`` (an id or a unique prefix of a candidate or a source) shows the
source, every round tried on it, the recipe that produced it and, for an accepted row, each
role's model and prompt hash as the row records them (:func:`made_by`); ``autodata recipes`` compares
the recipe versions present in one or more ``rounds`` tables. Reading files and printing live
in :mod:`autodata.cli_lineage`.

A row's ``recipe_hash`` names the recipe of the generate run that made it; its ``gate`` column
names the gate that decided it (the accept stage recomputes decisions under the current gate
without new LLM calls), so a recipe *version* here is the pair (recipe_hash, gate).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from autodata.errors import AutodataError
from autodata.settings import ROLES

EXCERPT_CHARS = 400
ROUND_COLUMNS = ("round", "candidate_id", "decision", "weak_mean", "strong_mean", "gap", "reason", "question")  # fmt: skip


@dataclass(frozen=True)
class Target:
    """What an id resolved to: always a source; a candidate too when the id named one."""

    source_id: str
    candidate_id: str | None = None


def _matches(values: pl.Series, ident: str) -> list[str]:
    unique = values.drop_nulls().unique().to_list()
    exact = [v for v in unique if v == ident]
    return exact or sorted(v for v in unique if v.startswith(ident))


def resolve(ident: str, sources: pl.DataFrame, rounds: pl.DataFrame) -> Target:
    """The candidate or source ``ident`` names (exactly, or as a unique prefix)."""
    candidates = _matches(rounds["candidate_id"], ident)
    source_ids = _matches(pl.concat([sources["source_id"], rounds["source_id"]]), ident)
    if len(candidates) + len(source_ids) > 1:
        shown = ", ".join([*candidates, *source_ids][:5])
        raise AutodataError(f"id '{ident}' is ambiguous ({shown}, ...); give more characters")
    if candidates:
        row = rounds.filter(pl.col("candidate_id") == candidates[0]).row(0, named=True)
        return Target(row["source_id"], candidates[0])
    if source_ids:
        return Target(source_ids[0])
    raise AutodataError(
        f"no candidate or source with id '{ident}' in the rounds or sources tables; "
        "copy an id from data/processed/rounds.parquet or accepted.parquet"
    )


def source_excerpt(sources: pl.DataFrame, source_id: str, chars: int = EXCERPT_CHARS) -> dict[str, Any]:  # fmt: skip
    """Title, uri, domain and the first ``chars`` characters of a source (empty if unknown)."""
    rows = sources.filter(pl.col("source_id") == source_id)
    if rows.is_empty():
        return {}
    row = rows.row(0, named=True)
    text = row["text"]
    excerpt = text if len(text) <= chars else text[:chars].rstrip() + " …"
    return {"title": row["title"], "uri": row["uri"], "domain": row["domain"], "excerpt": excerpt}


def rounds_of(rounds: pl.DataFrame, source_id: str) -> pl.DataFrame:
    """Every round tried on ``source_id``, in order, with the columns lineage shows."""
    return (
        rounds.filter(pl.col("source_id") == source_id)
        .sort("round", "candidate_id")
        .select(ROUND_COLUMNS)
    )


def recipes_of(
    rounds: pl.DataFrame, source_id: str, registry: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The registry entries of the recipes that made ``source_id``'s rounds.

    A hash missing from the registry gives ``{"recipe_hash": h, "recipe": None}``.
    """
    mine = rounds.filter(pl.col("source_id") == source_id)
    hashes = list(dict.fromkeys(mine["recipe_hash"].drop_nulls().to_list()))
    return [registry.get(h, {"recipe_hash": h, "recipe": None}) for h in hashes]


def made_by(accepted: pl.DataFrame, target: Target) -> tuple[str, list[tuple[str, str, str]]]:
    """The accepted row ``target`` names (its candidate, else its source's) and, per role, the
    model and prompt hash that row records: ``(candidate_id, [(role, model, prompt_hash)])``;
    ``("", [])`` when nothing of ``target`` was accepted."""
    key, value = ("candidate_id", target.candidate_id) if target.candidate_id else ("source_id", target.source_id)  # fmt: skip
    rows = accepted.filter(pl.col(key) == value)
    if rows.is_empty():
        return "", []
    row = rows.row(0, named=True)
    roles = [(r, row[f"{r}_model"] or "-", row[f"{r}_prompt_hash"] or "-") for r in ROLES]
    return row["candidate_id"], roles


def gate_of(rounds: pl.DataFrame, candidate_id: str | None, source_id: str) -> dict[str, Any]:
    """The gate a candidate (or the source's last round) was decided under."""
    key = "candidate_id" if candidate_id else "source_id"
    rows = rounds.filter(pl.col(key) == (candidate_id or source_id)).sort("round")
    return json.loads(rows["gate"][-1]) if rows.height and rows["gate"][-1] else {}


# --- comparing recipe versions -----------------------------------------------------------


def gate_hash(gate_json: str | None) -> str:
    """A short stable id of a gate JSON (key order ignored)."""
    blob = json.dumps(json.loads(gate_json or "{}"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _version_stats(group: pl.DataFrame) -> dict[str, Any]:
    first = (
        group.filter(pl.col("decision") == "accepted")
        .sort("round")
        .unique("source_id", keep="first")
    )
    n_sources = group["source_id"].n_unique()
    return {
        "sources": n_sources,
        "candidates": group.height,
        "accepted": first.height,
        "acceptance_rate": round(first.height / n_sources, 4) if n_sources else 0.0,
        "mean_rounds_per_accepted": _rounded(first["round"].mean()),
        "median_gap": _rounded(first["gap"].median()),
    }


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def compare_versions(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per (label, recipe_hash, gate) found in the ``rounds`` tables given by label.

    Columns: label, recipe_hash, gate (short hash), gate_json, sources, candidates, accepted,
    acceptance_rate (accepted sources / sources), mean_rounds_per_accepted (round of each
    source's first accepted candidate) and median_gap (over those accepted candidates).
    """
    rows = []
    for label, rounds in tables.items():
        for (recipe, gate), group in rounds.group_by("recipe_hash", "gate", maintain_order=True):
            rows.append(
                {"label": label, "recipe_hash": recipe, "gate": gate_hash(gate), "gate_json": gate}
                | _version_stats(group)
            )
    schema = {"label": pl.String, "recipe_hash": pl.String, "gate": pl.String, "gate_json": pl.String, "sources": pl.Int64,
              "candidates": pl.Int64, "accepted": pl.Int64, "acceptance_rate": pl.Float64,
              "mean_rounds_per_accepted": pl.Float64, "median_gap": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"gate": {"min_gap": 0.2}}`` → ``{"gate.min_gap": 0.2}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten(value, name + ".")
        else:
            out[name] = value
    return out


def differences(recipes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The keys whose values differ between the recipes given by label: key → label → value."""
    flat = {label: flatten(recipe) for label, recipe in recipes.items()}
    keys = sorted({k for f in flat.values() for k in f})
    return {
        key: {label: f.get(key) for label, f in flat.items()}
        for key in keys
        if len({json.dumps(f.get(key), sort_keys=True) for f in flat.values()}) > 1
    }


def effective_recipe(recipe: dict[str, Any] | None, gate_json: str | None) -> dict[str, Any]:
    """A version's recipe with its deciding gate in place of the generate run's gate."""
    merged = dict(recipe or {})
    if gate_json:
        merged["gate"] = json.loads(gate_json)
    return merged
