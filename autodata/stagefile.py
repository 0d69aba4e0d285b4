"""Resumable stage outputs: a stage whose parquet exists is read back, not recomputed.

Files are written atomically, so an existing file is always complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import polars as pl

from autodata import schemas
from autodata._killpoints import killpoint
from autodata.io import write_parquet


async def persisted(
    target: Path, schema: pl.Schema, name: str, compute: Callable[[], Awaitable[pl.DataFrame]]
) -> pl.DataFrame:
    """Read ``target`` if it exists; otherwise ``await compute()``, write it, and return it."""
    if target.exists():
        return schemas.check(pl.read_parquet(target), schema, name)
    frame = schemas.check(await compute(), schema, name)
    killpoint(f"stage:before-write:{target.stem}")
    write_parquet(frame, target)
    return frame


def read_or_empty(target: Path, schema: pl.Schema, name: str) -> pl.DataFrame:
    """The table at ``target``, or an empty one with ``schema``."""
    if not target.exists():
        return schemas.empty(schema)
    return schemas.check(pl.read_parquet(target), schema, name)
