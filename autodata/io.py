"""Atomic file writes: a reader never sees a half-written parquet, JSON or text file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from autodata._killpoints import killpoint
from autodata.errors import StorageError


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # e.g. a read-only or full output directory
        raise _storage_error(target, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.chmod(0o644)  # mkstemp makes it 0600; the published file should read like any other
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        killpoint(f"atomic:before-rename:{target.name}")
        os.replace(tmp, target)
    except OSError as exc:
        raise _storage_error(target, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _storage_error(target: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"could not write {target}: {exc.strerror or exc}; free disk space or fix permissions and rerun"
    )


def write_parquet(frame: pl.DataFrame, target: Path) -> Path:
    """Write ``frame`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        try:
            frame.write_parquet(tmp)
        except pl.exceptions.ComputeError as exc:  # polars' way to report an I/O error (disk full)
            if "os error" not in str(exc).lower():
                raise
            raise OSError(" ".join(str(exc).split())) from exc
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


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty directory beside ``target``; swap it in for ``target`` only on success."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise _storage_error(target, exc) from exc
    try:
        # mkdtemp makes it 0700; the published directory should read like any other
        tmp.chmod(0o755)
        yield tmp
        _swap_in(tmp, target)
    except OSError as exc:
        raise _storage_error(target, exc) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    try:
        os.replace(target, old / target.name)
    except OSError:
        old.rmdir()
        raise
    try:
        os.replace(new, target)
    except OSError:
        os.replace(old / target.name, target)  # put the previous version back
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)
