"""A full disk where Prefect's database fills first is one line naming that database and the fix
(issue 12, item 4). The run's temporary Prefect server then answers every write with ``500
Internal Server Error`` (its log: ``sqlite3.OperationalError: database or disk is full``) and the
run ended with Prefect's "Failed to reach API"-style fix glued to Prefect's own stderr text.
Reproduced by hand with PREFECT_HOME on a nearly full tmpfs; here the same exception Prefect's
client raises, and a disk that reports almost no free space."""

from __future__ import annotations

import logging
import shutil
from collections import namedtuple
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.exceptions import PrefectHTTPStatusError
from typer.testing import CliRunner

import tasks.ingest
from autodata import logfilter, third_party
from autodata.cli import app
from autodata.errors import OrchestratorError, StorageError
from autodata.settings import Paths

Usage = namedtuple("Usage", "total used free")


def server_error(url: str = "http://127.0.0.1:4321/api/flow_runs/abc/set_state") -> Exception:
    """What Prefect's client raises when its server answers 500 (``from_httpx_error``)."""
    request = httpx.Request("POST", url)
    response = httpx.Response(500, request=request, json={"exception_message": "Internal Server Error"})  # fmt: skip
    cause = httpx.HTTPStatusError(
        f"Server error '500 Internal Server Error' for url '{url}'", request=request, response=response
    )  # fmt: skip
    return PrefectHTTPStatusError.from_httpx_error(cause)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PREFECT_HOME holding a database, on a disk with ``free`` bytes left (default: 4 KB)."""
    prefect_home = tmp_path / ".prefect"
    prefect_home.mkdir()
    (prefect_home / "prefect.db").write_bytes(b"SQLite format 3\x00")
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    for name in third_party._DATABASE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(8 << 20, (8 << 20) - 4096, 4096))
    return prefect_home


def test_a_server_error_with_the_databases_disk_full_names_the_database(home: Path):
    error = third_party.as_error(server_error())
    assert isinstance(error, StorageError) and error.exit_code == 2
    assert str(error) == (
        f"Prefect's database {home / 'prefect.db'} is on a full disk (its server answered 500 "
        "Internal Server Error: database or disk is full); free space on that disk, or set "
        "PREFECT_HOME to a directory on another (Prefect makes a new database there), and "
        "rerun: finished stages and completed calls are kept"
    )


def test_the_run_ends_with_that_one_line(home: Path, tmp_path: Path, monkeypatch):
    def stage(*args: object, **kwargs: object) -> tuple[int, int]:
        raise server_error()

    monkeypatch.setattr(tasks.ingest, "ingest_to_files", stage)
    paths = {k: str(tmp_path / str(v)) for k, v in Paths().model_dump().items()}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"paths": paths}))
    result = CliRunner().invoke(app, ["--params", str(tmp_path / "params.yaml"), "ingest"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Prefect's database {home}/prefect.db")


def test_a_database_named_by_its_connection_url_is_the_one_checked(
    home: Path, tmp_path, monkeypatch
):
    elsewhere = tmp_path / "db" / "orchestration.db"
    elsewhere.parent.mkdir()
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{elsewhere}")
    assert f"Prefect's database {elsewhere} is on a full disk" in str(third_party.as_error(server_error()))  # fmt: skip
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "postgresql+asyncpg://db/prefect")
    assert isinstance(third_party.as_error(server_error()), OrchestratorError)  # not ours to check


@pytest.mark.parametrize(
    ("free", "url"),
    [
        (50 << 20, "http://127.0.0.1:4321/api/flow_runs/abc/set_state"),  # room left: not the disk
        (4096, "https://prefect.example.com/api/flow_runs/abc/set_state"),  # another machine's
    ],
    ids=["disk-not-full", "remote-server"],
)
def test_otherwise_a_server_error_stays_prefects(home: Path, monkeypatch, free: int, url: str):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(8 << 30, 0, free))
    error = third_party.as_error(server_error(url))
    assert isinstance(error, OrchestratorError) and error.exit_code == 3
    assert str(error).startswith("Prefect failed (PrefectHTTPStatusError: Server error '500")


def test_prefects_refused_log_uploads_do_not_write_into_the_error_line(monkeypatch):
    monkeypatch.setattr(logging, "raiseExceptions", True)  # restored after the test
    logfilter.install()
    assert logging.raiseExceptions is False  # Prefect's APILogWorker writes to stderr only if set
