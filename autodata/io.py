"""Atomic file writes: a reader never sees a half-written parquet, JSON or text file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from autodata.errors import StorageError


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise StorageError(
            f"could not write {target}: {exc.strerror or exc}; free disk space or fix permissions and rerun"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(frame: pl.DataFrame, target: Path) -> Path:
    """Write ``frame`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp)
    return target


def write_json(payload: Any, target: Path) -> Path:
    """Write ``payload`` as pretty JSON atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return target


def write_text(text: str, target: Path) -> Path:
    """Write ``text`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target
