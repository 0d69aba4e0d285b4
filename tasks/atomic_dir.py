"""Atomic directory writes: a reader sees the old directory or the new one, never half of one.

The directory counterpart of :func:`autodata.io.atomic_path` (Data Docs sites, HF datasets).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autodata.errors import StorageError


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty directory beside ``target``; swap it in for ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; the published directory should read like any other
    try:
        yield tmp
        _swap_in(tmp, target)
    except OSError as exc:
        raise StorageError(
            f"could not write {target}: {exc.strerror or exc}; free disk space or fix permissions and rerun"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
