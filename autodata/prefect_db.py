"""Prefect's database is migrated once per project, not at every start of the run's server.

Prefect's server runs its Alembic migrations whenever it starts
(``PREFECT_API_DATABASE_MIGRATE_ON_START``, on by default): ~7 s to create a new SQLite database
here, ~0.3 s of loading migration scripts to find an existing one up to date — at every run.
After a start that migrated, the revision the database is at and the Prefect version that put
it there are written beside it (``prefect.db.migrated``); a later start by the same Prefect
version, on a database still at that revision, runs the server with migrations off. A new
database, another Prefect version, a database replaced or damaged: the record no longer
matches, and the server migrates as Prefect would. Only a SQLite database is checked (one on a
database server is left to Prefect), and a user's own ``PREFECT_API_DATABASE_MIGRATE_ON_START``
(either name) always wins.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

MIGRATE_ENV = "PREFECT_SERVER_DATABASE_MIGRATE_ON_START"
USER_ENV = (MIGRATE_ENV, "PREFECT_API_DATABASE_MIGRATE_ON_START")  # Prefect reads either name


def record_path(database: Path) -> Path:
    """Where the migration record of ``database`` is kept: beside it."""
    return database.with_name(database.name + ".migrated")


def revision(database: Path) -> str | None:
    """The Alembic revision the SQLite ``database`` is at; None if it has none or cannot be
    read (missing, empty, locked, damaged)."""
    if not database.is_file():
        return None
    try:
        uri = f"{database.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as con:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    except (sqlite3.Error, OSError):
        return None
    return str(row[0]) if row and row[0] else None


def up_to_date(record: Mapping[str, Any] | None, prefect_version: str, at: str | None) -> bool:
    """Whether a database at revision ``at`` needs no migration by ``prefect_version``: the
    record says that version migrated it to exactly that revision."""
    if not record or at is None:
        return False
    return record.get("prefect") == prefect_version and record.get("revision") == at


def read_record(database: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(record_path(database).read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def server_env(
    database: Path | None, prefect_version: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """What the server's environment adds: migrations off when ``database`` is known to be up
    to date (module docstring); nothing when the user set it or the database is not SQLite."""
    if database is None or any(name in environ for name in USER_ENV):
        return {}
    if up_to_date(read_record(database), prefect_version, revision(database)):
        return {MIGRATE_ENV: "false"}
    return {}


def remember(database: Path | None, prefect_version: str) -> None:
    """After a healthy start: record the revision ``database`` is at now, if it changed. Written
    in place, not atomically: a torn record reads as none (the next start migrates) and no
    temporary file is ever left in Prefect's home; a record that cannot be written only means
    the next start migrates again (Prefect's default)."""
    if database is None:
        return
    at = revision(database)
    if at is None or up_to_date(read_record(database), prefect_version, at):
        return
    with suppress(OSError):
        record_path(database).write_text(json.dumps({"prefect": prefect_version, "revision": at}))
