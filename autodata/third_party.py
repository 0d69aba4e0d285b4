"""A library's exception that reaches the CLI, as one line naming the component and the fix.

:func:`autodata.cli_guard.guarded` (what ``autodata run``, ``autodata ingest`` and every
``autodata stage`` command run inside) asks :func:`as_error` about any exception that is not an
:class:`AutodataError`; ``None`` means it is ours — a bug — and the traceback is shown. The
component is found from where the exception comes from, without importing any of these
libraries (Prefect and Great Expectations take seconds to import):

1. its class or a base class is defined in the component's packages
   (``prefect.exceptions.ObjectNotFound``, ``dvc.exceptions.DvcException``, ``scmrepo``'s errors,
   ``great_expectations.exceptions.*``, ``polars.exceptions.PolarsError``, ``sqlite3.Error``);
2. a built-in ``RuntimeError``, connection error or timeout, or an HTTP client's error, raised
   inside the component's code below any frame of ours (Prefect reports an unreachable API as
   ``RuntimeError: Failed to reach API``); a ``TypeError`` or ``ValueError`` there is our misuse;
3. an ``OSError`` for a full or read-only disk, whoever raised it.

A Prefect API error that is the server's ``500 Internal Server Error`` says nothing of its cause.
When the server is this machine's (a loopback URL: the run's temporary server) and the disk of
Prefect's database (``PREFECT_HOME/prefect.db``, or the SQLite file of
``PREFECT_SERVER_DATABASE_CONNECTION_URL``) has almost no free space left, the cause is the full
disk — the server's log says ``sqlite3.OperationalError: database or disk is full`` — and the one
line names that file and how to free it (:func:`full_prefect_database`), not the API.

Exit codes: 3 for Prefect (a server, like :class:`OrchestratorError`), 2 for SQLite and a full
or read-only disk (:class:`StorageError`), 5 for DVC, Great Expectations and polars
(:class:`ComponentError`).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

from autodata.errors import AutodataError, ComponentError, OrchestratorError, StorageError

OURS = ("autodata", "tasks", "flows")
_ENVIRONMENTAL = (RuntimeError, ConnectionError, TimeoutError)
_NETWORK_PACKAGES = ("httpx", "httpcore", "aiohttp", "requests", "urllib3")
_DISK = {errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "disk quota exceeded",
         errno.EROFS: "read-only file system"}  # fmt: skip
_MAX_MESSAGE = 300
_NEARLY_FULL = 1024 * 1024  # bytes free below which a disk counts as full (SQLite needs pages)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DATABASE_ENV = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


@dataclass(frozen=True)
class Component:
    """A library the pipeline runs on: its name, its top-level packages and what to do."""

    name: str
    packages: tuple[str, ...]
    fix: str
    error: type[AutodataError] = ComponentError


COMPONENTS = (
    Component(
        "Prefect",
        ("prefect",),
        "check that the Prefect API answers: unset PREFECT_API_URL to let autodata start its own "
        "temporary server (its log is in paths.logs), or start yours with "
        "`prefect server start`; then rerun: finished stages and completed calls are kept",
        OrchestratorError,
    ),
    Component(
        "DVC",
        ("dvc", "dvc_data", "dvc_objects", "dvc_http", "scmrepo"),
        "run `dvc status` and `dvc doctor` in the project (a git + DVC repository: `git init && "
        "dvc init`); `dvc pull` if the data is on a remote; then rerun",
    ),
    Component(
        "Great Expectations",
        ("great_expectations",),
        "the validation gate could not run: reinstall the pinned version (`uv sync --frozen`) "
        "and rerun `autodata stage validate`; AUTODATA_TRACEBACK=1 shows the traceback to report",
    ),
    Component(
        "polars",
        ("polars", "pyarrow"),
        "a table under paths.processed or paths.interim is damaged or was written by another "
        "autodata version: rerun the stage that writes it (`dvc repro --force <stage>`, or "
        "`autodata run`)",
    ),
    Component(
        "SQLite",
        ("sqlite3", "_sqlite3"),
        "a database is locked, damaged or on a full or read-only disk (the call cache under "
        "paths.cache, or Prefect's under PREFECT_HOME): stop the other run, free space, or delete "
        "the damaged file (it is rebuilt; its cached calls are lost)",
        StorageError,
    ),
)


def as_error(exc: BaseException) -> AutodataError | None:
    """``exc`` as a one-line :class:`AutodataError` naming the component and the fix, or
    ``None`` when it does not come from a component (module doc)."""
    if isinstance(exc, OSError) and exc.errno in _DISK:
        return _disk_error(exc, _DISK[exc.errno])
    component = component_of(exc)
    if component is None:
        return None
    if component.name == "Prefect" and _is_local_server_error(exc):
        database = full_prefect_database()
        if database is not None:
            return _full_database_error(exc, database)
    what = f"{type(exc).__name__}: {_first_line(exc)}" if str(exc) else type(exc).__name__
    return component.error(f"{component.name} failed ({what}); {component.fix}")


def component_of(exc: BaseException) -> Component | None:
    """The component ``exc`` comes from (rules 1 and 2 of the module doc), or ``None``."""
    for cls in type(exc).__mro__:
        found = _by_package(cls.__module__)
        if found is not None:
            return found
    origin = _package(type(exc).__module__)
    if (origin == "builtins" and isinstance(exc, _ENVIRONMENTAL)) or origin in _NETWORK_PACKAGES:
        return _raised_in(exc.__traceback__)
    return None


def _raised_in(tb: TracebackType | None) -> Component | None:
    """The component whose frame is the innermost one that is ours or a component's."""
    frames = []
    while tb is not None:
        frames.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    for module in reversed(frames):
        if _package(module) in OURS:
            return None
        found = _by_package(module)
        if found is not None:
            return found
    return None


def _by_package(module: str) -> Component | None:
    top = _package(module)
    return next((c for c in COMPONENTS if top in c.packages), None)


def _package(module: str) -> str:
    return module.split(".", 1)[0]


def _disk_error(exc: OSError, problem: str) -> StorageError:
    where = f": {exc.filename}" if exc.filename else ""
    return StorageError(
        f"{problem}{where} ({type(exc).__name__}); free space or make it writable (or point the paths "
        "in params.yaml at another disk) and rerun: finished stages and completed calls are kept"
    )


def full_prefect_database() -> Path | None:
    """Prefect's SQLite database file when the disk it is on is (nearly) full, else None (not
    full, not SQLite, or no such file)."""
    database = prefect_database()
    if database is None or not database.parent.is_dir():
        return None
    try:
        free = shutil.disk_usage(database.parent).free
    except OSError:
        return None
    return database if free < _NEARLY_FULL else None


def prefect_database(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where Prefect's server keeps its SQLite database, from the environment (as Prefect reads
    it); None for a database that is not a SQLite file."""
    url = next((environ[k] for k in _DATABASE_ENV if environ.get(k)), None)
    if url is None:
        home = Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
        return home / "prefect.db"
    parts = urlsplit(url)
    if not parts.scheme.startswith("sqlite") or parts.path in ("", "/", "/:memory:"):
        return None
    return Path(unquote(parts.path[1:]))  # sqlite:///relative, sqlite:////absolute


def _is_local_server_error(exc: BaseException) -> bool:
    """An HTTP 5xx from a Prefect API on this machine (the run's temporary server)."""
    status = getattr(getattr(exc, "response", None), "status_code", 0)
    if not isinstance(status, int) or status < 500:
        return False
    try:  # an httpx error without a request raises on .request
        url = getattr(getattr(exc, "request", None), "url", None)
    except RuntimeError:
        return False
    return getattr(url, "host", "") in _LOOPBACK


def _full_database_error(exc: BaseException, database: Path) -> StorageError:
    response = getattr(exc, "response", None)
    status = f"{response.status_code} {response.reason_phrase}".strip() if response else "an error"
    return StorageError(
        f"Prefect's database {database} is on a full disk (its server answered {status}: "
        "database or disk is full); free space on that disk, or set PREFECT_HOME to a directory "
        "on another (Prefect makes a new database there), and rerun: finished stages and "
        "completed calls are kept"
    )


def _first_line(exc: BaseException) -> str:
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"
