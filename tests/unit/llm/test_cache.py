"""The per-call cache: what the key covers, and a SQLite store that survives concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from typing import Any

import pytest
from cache_workers import hammer
from pydantic import BaseModel

from autodata.llm.cache import KEY_FIELDS, CallCache, _switch_to_wal, cache_key
from autodata.llm.client import ChatRequest, OpenAIChatClient, WireOptions

BODY: dict[str, Any] = {
    "model": "scripted",
    "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
    "temperature": 0.7,
    "top_p": 1.0,
    "max_tokens": 512,
    "n": 1,
    "seed": 0,
    "response_format": {"type": "json_schema", "json_schema": {"name": "X", "schema": {}}},
    "logprobs": True,
    "top_logprobs": 5,
}
CHANGED: dict[str, Any] = {
    "model": "other",
    "messages": [{"role": "user", "content": "u"}],
    "temperature": 0.0,
    "top_p": 0.9,
    "max_tokens": 511,
    "n": 2,
    "seed": 1,
    "response_format": {"type": "json_schema", "json_schema": {"name": "Y", "schema": {}}},
    "logprobs": False,
    "top_logprobs": 4,
}


class _Out(BaseModel):
    ok: bool


def test_the_key_is_a_stable_sha256_independent_of_field_order():
    reordered = dict(reversed(list(BODY.items())))
    assert cache_key(BODY) == cache_key(reordered) == cache_key(json.loads(json.dumps(BODY)))
    assert len(cache_key(BODY)) == 64 and int(cache_key(BODY), 16) >= 0


def test_every_key_field_has_a_test_value():
    assert set(CHANGED) == set(KEY_FIELDS) == set(BODY)


@pytest.mark.parametrize("field", KEY_FIELDS)
def test_each_key_field_changes_the_key(field):
    assert cache_key({**BODY, field: CHANGED[field]}) != cache_key(BODY)


@pytest.mark.parametrize(
    "extra",
    [
        {"stream": False},
        {"user": "someone"},
        {"base_url": "http://elsewhere/v1"},
        {"api_key": "sk-test-SECRET"},
        {"timeout": 3},
        {"max_retries": 9},
    ],
    ids=lambda d: next(iter(d)),
)
def test_fields_outside_key_fields_do_not_change_the_key(extra):
    assert cache_key({**BODY, **extra}) == cache_key(BODY)


async def test_the_client_sends_only_keyed_fields(scripted):
    """A body field outside KEY_FIELDS would let two different requests share a cached reply."""
    srv = scripted(lambda body: '{"ok": true}')
    client = OpenAIChatClient(srv.base_url, "scripted", options=WireOptions(guidance_hints=True))
    try:
        await client.chat(ChatRequest.of("s", "u", response_model=_Out, top_logprobs=2, n=2))
    finally:
        await client.aclose()
    assert set(srv.requests[0].body) == set(KEY_FIELDS)


def test_put_then_get_round_trips_and_survives_reopening(tmp_path):
    cache = CallCache(tmp_path)
    assert cache.get("absent") is None
    cache.put("k", {"choices": [{"message": {"content": "é ✓"}}]})
    cache.put("k", {"choices": [{"message": {"content": "é ✓"}}]})
    assert len(cache) == 1
    cache.close()
    reopened = CallCache(tmp_path)
    assert reopened.get("k") == {"choices": [{"message": {"content": "é ✓"}}]}
    reopened.close()


def test_two_processes_writing_at_once_leave_a_consistent_db(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ops, barrier = 50, ctx.Barrier(2)
    procs = [
        ctx.Process(target=hammer, args=(str(tmp_path), w, ops, barrier), daemon=True)
        for w in (0, 1)
    ]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0]
    finally:  # a hung child must never keep pytest from exiting
        for p in procs:
            if p.is_alive():
                p.kill()

    cache = CallCache(tmp_path)
    assert len(cache) == ops + 2 * ops
    assert all(cache.get(f"shared-{i}") == {"i": i} for i in range(ops))
    assert all(cache.get(f"w1-{i}") == {"w": 1, "i": i} for i in range(ops))
    cache.close()
    with sqlite3.connect(tmp_path / "calls.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


class _ContendedDb:
    """Answers "database is locked" to the first ``busy`` journal-mode switches, as SQLite does
    (without its busy handler) when two processes open a fresh cache at the same moment."""

    def __init__(self, busy: int, error: str = "database is locked") -> None:
        self.busy, self.error, self.calls = busy, error, 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.calls <= self.busy:
            raise sqlite3.OperationalError(self.error)


def test_wal_switch_retries_while_another_process_holds_the_lock():
    db = _ContendedDb(busy=3)
    _switch_to_wal(db)  # type: ignore[arg-type]
    assert db.calls == 4


def test_wal_switch_does_not_retry_other_errors():
    db = _ContendedDb(busy=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _switch_to_wal(db)  # type: ignore[arg-type]
    assert db.calls == 1
