"""Per-call cache: content-addressed, on disk under the project, safe for concurrent processes.

A killed run resumes without repeating a call; gates can be re-tuned with zero new calls.

Durability: a reply is committed before the call that fetched it returns (:meth:`CallCache.aput`
awaits the commit, :meth:`CallCache.put` blocks for it), so a run killed with SIGKILL repeats at
most the calls that were in flight. Commits run on one writer thread per cache, which commits
every row queued meanwhile in one transaction (group commit): the event loop never blocks on
SQLite, and replies arriving together share a commit. Under WAL with ``synchronous=NORMAL`` a
commit does not fsync; a process kill loses nothing committed (a power cut could lose the
last commits, which are then simply repeated).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from autodata._killpoints import killpoint
from autodata.errors import StorageError

# The key hashes exactly these request fields. Left out, because they do not change the reply:
# base_url and api_key (where the model is served, who pays), concurrency, timeouts and retries.
KEY_FIELDS = (
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "n",
    "seed",
    "response_format",
    "logprobs",
    "top_logprobs",
)
# Keyed only when the body has them (so the keys of requests without them stay as they were):
# reasoning-model options, and every field a role's ``extra_body`` adds (passed as ``extra``).
OPTIONAL_KEY_FIELDS = (
    "max_completion_tokens",
    "chat_template_kwargs",
    "reasoning_effort",
)

_BUSY_SECONDS = 60  # how long a connection waits for another process's lock

# The key's JSON is the stdlib's (orjson writes some floats differently, e.g. 1e-05 as 1e-5, which
# would change existing keys); one prebuilt encoder spares building it per call.
_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(body: dict[str, Any], extra: Iterable[str] = ()) -> str:
    """sha256 over the :data:`KEY_FIELDS` of an OpenAI chat request body, plus those of
    :data:`OPTIONAL_KEY_FIELDS` and ``extra`` (the role's ``extra_body`` keys) it has."""
    keyed = {field: body.get(field) for field in KEY_FIELDS}
    keyed |= {field: body[field] for field in (*OPTIONAL_KEY_FIELDS, *extra) if field in body}
    return hashlib.sha256(_KEY_JSON.encode(keyed).encode()).hexdigest()


class CallCache:
    """SQLite (WAL) store of raw chat-completion response bodies by :func:`cache_key`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "calls.sqlite"
        self._lock = threading.Lock()  # guards _db (reads)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._db = _connect(self.path)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, body TEXT NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:  # read-only or full disk, a file in the way
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise StorageError(
                f"cannot open the call cache {self.path}: {reason}; make {directory} writable "
                "(or point paths.cache elsewhere), free disk space, and rerun"
            ) from None
        self._writer = _Writer(self.path)

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response body for ``key``, or None."""
        try:
            with self._lock:
                row = self._db.execute("SELECT body FROM calls WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:  # e.g. a read-only cache whose WAL index cannot be written
            raise StorageError(
                f"cannot read the call cache {self.path}: {exc}; make {self.path.parent} "
                "writable (or point paths.cache elsewhere) and rerun"
            ) from None
        return json.loads(row[0]) if row else None

    def put(self, key: str, response: dict[str, Any]) -> None:
        """Store a response body and return once it is committed (blocking the caller).

        A second writer of the same key is harmless (same content)."""
        self._writer.submit(key, _dump(response)).result()

    async def aput(self, key: str, response: dict[str, Any]) -> None:
        """:meth:`put` for the event loop: awaits the commit without blocking the loop."""
        await asyncio.wrap_future(self._writer.submit(key, _dump(response)))

    def flush(self) -> None:
        """Wait until every row queued so far is committed (puts already wait for their own)."""
        self._writer.submit(None, "").result()

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        """Commit what is queued and close the database."""
        try:
            self._writer.close()
        finally:
            with self._lock:
                self._db.close()


_Row = tuple[str | None, str, "Future[None]"]  # key None: a flush barrier, nothing to write


class _Writer:
    """The cache's one writing connection and thread: each batch of queued rows is one commit."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._cond = threading.Condition()
        self._queue: list[_Row] = []
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, key: str | None, blob: str) -> Future[None]:
        done: Future[None] = Future()
        with self._cond:
            if self._closed:
                raise StorageError(f"the call cache {self._path} is closed; this is a bug")
            self._queue.append((key, blob, done))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="call-cache-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return done

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while batch := self._next_batch():
                try:
                    db = db or _connect(self._path)
                    rows = {key: blob for key, blob, _ in batch if key is not None}
                    if rows:
                        _commit(db, rows)
                except Exception as exc:  # handed to every waiting caller, never swallowed
                    error = self._storage_error(exc) if isinstance(exc, sqlite3.Error) else exc
                    for _, _, done in batch:
                        done.set_exception(error)
                else:
                    for _, _, done in batch:
                        done.set_result(None)
        finally:
            if db is not None:
                db.close()

    def _next_batch(self) -> list[_Row]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            batch, self._queue = self._queue, []
        return batch

    def _storage_error(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(
            f"could not write the call cache {self._path}: {exc}; free disk space or fix "
            "permissions and rerun (the run's tables are unaffected)"
        )


def _dump(response: dict[str, Any]) -> str:
    return json.dumps(response, separators=(",", ":"), ensure_ascii=False)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=_BUSY_SECONDS, check_same_thread=False, isolation_level=None)
    _switch_to_wal(db)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """Set WAL mode, retrying while another process holds the lock.

    Switching the journal mode needs an exclusive lock, and SQLite answers "database is locked"
    at once (without its busy handler) when two processes open a fresh cache together.
    """
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.05)


def _commit(db: sqlite3.Connection, rows: dict[str, str]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany("INSERT OR REPLACE INTO calls (key, body) VALUES (?, ?)", rows.items())
        killpoint("cache:commit")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
