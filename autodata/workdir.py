"""What a rerun keeps of the loop's per-round files (``Paths.round_files``: one folder per
source set, ``round_NN/<content key>/<step>.parquet``).

A round's stage files are read back instead of recomputed, so a killed run resumes where it
stopped. Rounds in which a model call failed (a ``call_status`` or ``decision`` of
``infra_error``) are the exception: a failure is not a decision, and reading it back made an
outage permanent (every rerun failed the same way, with no request, until someone deleted the
directory). So the first such round and every later one (planned from its outcome) are removed
before the loop starts; on the rerun their completed calls come back from the per-call cache,
which holds successes only, and just the failed calls reach a server again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from autodata.settings import Paths

INFRA_ERROR = "infra_error"
_STATUS_COLUMNS = ("call_status", "decision")


def first_failed_round(directory: Path) -> int | None:
    """The number of the first ``round_NN`` under ``directory`` with a failed call, or None."""
    for number, round_dir in _round_dirs(directory):
        if any(_has_failure(path) for path in round_dir.rglob("*.parquet")):
            return number
    return None


def discard_failed_rounds(directory: Path) -> int | None:
    """Remove the first round with a failed call and every later round; return its number."""
    first = first_failed_round(directory)
    if first is not None:
        for number, round_dir in _round_dirs(directory):
            if number >= first:
                shutil.rmtree(round_dir)
    return first


def _round_dirs(directory: Path) -> list[tuple[int, Path]]:
    """(number, path) of every round folder under ``directory``, in round order."""
    found = []
    for path in directory.iterdir() if directory.is_dir() else []:
        number = Paths.round_of(path)
        if number is not None and path.is_dir():
            found.append((number, path))
    return sorted(found)


def _has_failure(path: Path) -> bool:
    columns = [c for c in _STATUS_COLUMNS if c in pl.read_parquet_schema(path)]
    if not columns:
        return False
    failed = pl.any_horizontal(pl.col(c) == INFRA_ERROR for c in columns)
    return pl.scan_parquet(path).filter(failed).head(1).collect().height > 0
