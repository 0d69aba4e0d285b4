"""Per-call cache: content-addressed, on disk under the project, safe for concurrent processes.

A killed run resumes without repeating a call; gates can be re-tuned with zero new calls.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

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


def cache_key(body: dict[str, Any]) -> str:
    """sha256 over the :data:`KEY_FIELDS` of an OpenAI chat request body."""
    keyed = {field: body.get(field) for field in KEY_FIELDS}
    blob = json.dumps(keyed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class CallCache:
    """SQLite (WAL) store of raw chat-completion response bodies by :func:`cache_key`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "calls.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=60, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, body TEXT NOT NULL)"
        )

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response body for ``key``, or None."""
        with self._lock:
            row = self._db.execute("SELECT body FROM calls WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, response: dict[str, Any]) -> None:
        """Store a response body; a second writer of the same key is harmless (same content)."""
        blob = json.dumps(response, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO calls (key, body) VALUES (?, ?)", (key, blob))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
