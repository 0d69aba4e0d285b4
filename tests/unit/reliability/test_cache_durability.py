"""A completed LLM call is durable before its result is used: SIGKILL right after ``chat()``
returns loses nothing, and a kill inside a cache commit leaves a consistent database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from autodata._killpoints import ENV as KILL_ENV
from autodata.llm.cache import CallCache, cache_key
from autodata.llm.client import ChatRequest, WireOptions
from autodata.llm.wire import build_body
from autodata.testing.scripted_server import ScriptedServer

CHILD = Path(__file__).with_name("durable_child.py")
Scripted = Callable[..., ScriptedServer]


def run_child(server: ScriptedServer, cache_dir: Path, n: int, kill_at: str = "") -> None:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at:
        env[KILL_ENV] = kill_at
    proc = subprocess.run(
        [sys.executable, str(CHILD), server.base_url, str(cache_dir), str(n)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def stored_questions(cache_dir: Path) -> set[int]:
    """Which of the child's questions ("question {i}") have a committed reply."""
    cache = CallCache(cache_dir)
    try:
        found = set()
        for i in range(200):
            body = build_body(ChatRequest.of("s", f"question {i}"), "scripted", 0, WireOptions())
            if cache.get(cache_key(body)) is not None:
                found.add(i)
        return found
    finally:
        cache.close()


def integrity(cache_dir: Path) -> str:
    with sqlite3.connect(cache_dir / "calls.sqlite") as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_every_returned_call_survives_a_sigkill(scripted: Scripted, tmp_path: Path) -> None:
    server = scripted()
    run_child(server, tmp_path, 40)
    assert server.count() == 40
    assert stored_questions(tmp_path) == set(range(40))
    assert integrity(tmp_path) == "ok"


def test_a_kill_after_the_nth_reply_keeps_exactly_the_first_n(scripted: Scripted, tmp_path: Path) -> None:  # fmt: skip
    server = scripted()
    run_child(server, tmp_path, 40, kill_at="llm:response:weak:7")
    assert server.count() == 7
    assert stored_questions(tmp_path) == set(range(7))


@pytest.mark.parametrize("nth", [1, 5])
def test_a_kill_inside_a_commit_loses_only_that_call(scripted: Scripted, tmp_path: Path, nth: int) -> None:  # fmt: skip
    server = scripted()
    run_child(server, tmp_path, 40, kill_at=f"cache:commit:{nth}")
    assert server.count() == nth  # the n-th call was in flight: its reply never came back
    assert stored_questions(tmp_path) == set(range(nth - 1))
    assert integrity(tmp_path) == "ok"
    # and the cache still works: a rerun asks only for what is missing
    run_child(server, tmp_path, 10)
    assert server.count() == nth + (10 - (nth - 1))
