"""Child-process code for the cache tests: kept apart so spawned children import only the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autodata.llm.cache import CallCache


def hammer(directory: str, worker: int, ops: int, barrier: Any) -> None:
    """Put shared and private keys, reading each back at once; exit non-zero on a bad read."""
    cache = CallCache(Path(directory))
    barrier.wait(timeout=60)  # a sibling that died early breaks the barrier instead of hanging
    for i in range(ops):
        for key, body in ((f"shared-{i}", {"i": i}), (f"w{worker}-{i}", {"w": worker, "i": i})):
            cache.put(key, body)
            got = cache.get(key)
            if got != body:
                raise SystemExit(f"{key}: read back {got!r}")
    cache.close()
