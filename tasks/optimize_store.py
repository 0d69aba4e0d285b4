"""What meta-optimization keeps on disk, all under ``paths.optimize`` (a directory this module
lays out whole), so a killed run resumes where it stopped:

- ``splits.parquet``: the training / validation split (``tasks.optimize_split``);
- ``variants.jsonl``: every evaluated variant, once — a recipe version: ``variant_id`` (its
  recipe hash), ``parent``, ``iteration``, ``analysis``, ``rationale``, ``edits``, ``diff``,
  ``surface``, ``validation_scores`` (one per repeat), ``validation_score``, ``kept``;
- ``history.jsonl``: every step, appended; a step repeated after a resume (same ``key``) is
  written once;
- ``state.json``: the loop's own state (:class:`State`), rewritten atomically after each step;
- ``runs/``: each evaluation's loop files (one ``generate`` work directory per run).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from autodata.io import write_json, write_parquet
from autodata.settings import Paths
from tasks import optimize_split
from tasks.optimize import Spend


def splits_path(paths: Paths) -> Path:
    return paths.optimize / "splits.parquet"


def variants_path(paths: Paths) -> Path:
    return paths.optimize / "variants.jsonl"


def history_path(paths: Paths) -> Path:
    return paths.optimize / "history.jsonl"


def state_path(paths: Paths) -> Path:
    return paths.optimize / "state.json"


def runs_dir(paths: Paths) -> Path:
    return paths.optimize / "runs"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file; a last line cut by a kill is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _append(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(entry, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class History:
    """The append-only step log; :meth:`log` skips a ``key`` already written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys = {entry.get("key") for entry in read_jsonl(path)}

    def log(self, key: str, step: str, iteration: int, **fields: Any) -> bool:
        """Append one step; False when this key was written before (a resumed step)."""
        if key in self.keys:
            return False
        _append(
            self.path, {"key": key, "at": now(), "iteration": iteration, "step": step, **fields}
        )
        self.keys.add(key)
        return True


def read_variants(paths: Paths) -> dict[str, dict[str, Any]]:
    """Every evaluated variant by id."""
    return {v["variant_id"]: v for v in read_jsonl(variants_path(paths))}


def add_variant(paths: Paths, variant: dict[str, Any]) -> None:
    """Record a variant unless its id is there already (a variant is written once)."""
    if variant["variant_id"] not in read_variants(paths):
        _append(variants_path(paths), {"created": now(), **variant})


def rejections(paths: Paths) -> dict[str, int]:
    """Proposals refused before evaluation, by kind (from the history)."""
    counts: dict[str, int] = {}
    for entry in read_jsonl(history_path(paths)):
        if entry.get("step") == "reject":
            counts[entry["kind"]] = counts.get(entry["kind"], 0) + 1
    return dict(sorted(counts.items()))


@dataclass
class State:
    """The loop's state: ``iteration`` = iterations finished; ``population`` = kept variants →
    validation score; budgets spent (in total and in the iteration under way)."""

    measurement: str
    seed_variant: str
    iteration: int = 0
    population: dict[str, float] = field(default_factory=dict)
    spent: Spend = field(default_factory=Spend)
    iteration_spent: Spend = field(default_factory=Spend)
    stopped: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> State:
        spends = {k: Spend(**data[k]) for k in ("spent", "iteration_spent")}
        return State(**(data | spends))


def read_state(paths: Paths) -> State | None:
    path = state_path(paths)
    return State.from_json(json.loads(path.read_text())) if path.exists() else None


def write_state(paths: Paths, state: State) -> None:
    write_json(state.as_json(), state_path(paths))


def stored_split(paths: Paths) -> pl.DataFrame | None:
    path = splits_path(paths)
    return pl.read_parquet(path) if path.exists() else None


def save_split(paths: Paths, split: pl.DataFrame) -> None:
    write_parquet(split.select(list(optimize_split.SCHEMA)), splits_path(paths))
