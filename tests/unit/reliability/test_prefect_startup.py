"""Prefect's start-up off the critical path (issue 12, item 6): the run's temporary server is
spawned before the command imports its flows and waited for only when the first flow is about
to run, and its database is migrated once per project (and again after a Prefect upgrade or a
replaced database), never at every start. A fake server stands in for Prefect's
(``fake_prefect_server.py``): it listens only once the test lets it, so nothing here is timed."""

from __future__ import annotations

import inspect
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
from conftest import make_settings

from autodata import prefect_api, prefect_db
from autodata.cli_guard import guarded
from autodata.errors import AutodataError
from autodata.logfilter import ExpectedFailure
from autodata.stopping import StopOnSignal

FAKE = Path(__file__).with_name("fake_prefect_server.py")
VERSION = "3.8.8"


def database_at(path: Path, revision: str) -> Path:
    """A SQLite file whose Alembic revision is ``revision`` (what Prefect's migrations leave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32))")
        con.execute("DELETE FROM alembic_version")
        con.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    return path


@pytest.mark.parametrize(
    ("record", "at", "expected"),
    [
        ({"prefect": VERSION, "revision": "r2"}, "r2", True),
        ({"prefect": VERSION, "revision": "r1"}, "r2", False),  # the database moved on
        ({"prefect": "3.9.0", "revision": "r2"}, "r2", False),  # Prefect was upgraded
        (None, "r2", False),  # never recorded (a new project, a torn record)
        ({"prefect": VERSION, "revision": "r2"}, None, False),  # no database, or not readable
    ],
)
def test_a_database_is_up_to_date_only_as_recorded(record: dict | None, at: str | None, expected: bool) -> None:  # fmt: skip
    assert prefect_db.up_to_date(record, VERSION, at) is expected


def test_the_first_start_migrates_and_later_ones_do_not(tmp_path: Path) -> None:
    db = tmp_path / "prefect.db"
    assert prefect_db.server_env(db, VERSION, {}) == {}  # no database yet: Prefect creates it
    database_at(db, "r1")
    assert prefect_db.server_env(db, VERSION, {}) == {}  # migrated, but not recorded yet
    prefect_db.remember(db, VERSION)
    assert json.loads(prefect_db.record_path(db).read_text()) == {"prefect": VERSION, "revision": "r1"}  # fmt: skip
    assert prefect_db.server_env(db, VERSION, {}) == {prefect_db.MIGRATE_ENV: "false"}
    assert prefect_db.server_env(db, "3.9.0", {}) == {}  # an upgrade migrates again
    database_at(db, "r0")  # a database replaced by an older one
    assert prefect_db.server_env(db, VERSION, {}) == {}


def test_a_torn_record_a_missing_database_or_the_users_setting_mean_prefects_default(tmp_path: Path) -> None:  # fmt: skip
    db = database_at(tmp_path / "prefect.db", "r1")
    prefect_db.remember(db, VERSION)
    for name in prefect_db.USER_ENV:  # the user's value wins, either of Prefect's names
        assert prefect_db.server_env(db, VERSION, {name: "true"}) == {}
    assert prefect_db.server_env(None, VERSION, {}) == {}  # not a SQLite file
    prefect_db.record_path(db).write_text('{"prefect": "3.8')  # a kill while writing it
    assert prefect_db.server_env(db, VERSION, {}) == {}
    db.unlink()
    assert prefect_db.server_env(db, VERSION, {}) == {}


def test_prerequisites_run_once_before_the_loop_and_a_failed_one_never_starts_it() -> None:
    calls: list[str] = []
    stop = StopOnSignal(str, print)
    stop.before_run(lambda: calls.append("api ready"))

    async def main() -> str:
        calls.append("loop")
        return "done"

    assert stop.run(main()) == "done" and stop.run(main()) == "done"
    assert calls == ["api ready", "loop", "loop"]

    def fails() -> None:
        raise RuntimeError("the server did not start")

    stop.before_run(fails)
    never = main()
    with pytest.raises(RuntimeError):
        stop.run(never)
    assert inspect.getcoroutinestate(never) == inspect.CORO_CLOSED  # no "never awaited" warning


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Runs started here get the fake server, with ``PREFECT_HOME`` in ``tmp_path`` and no
    configured API; returns (the file that lets it listen, the file it writes its env to)."""
    go, seen = tmp_path / "go", tmp_path / "server-env.json"
    argv = [sys.executable, str(FAKE)]
    monkeypatch.setattr(prefect_api.TemporaryServer, "command", lambda self: [*argv, str(self.port), str(go), str(seen)])  # fmt: skip
    monkeypatch.setattr(prefect_api, "_configured_url", lambda: "")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    return go, seen


def test_the_run_starts_before_its_server_answers_and_waits_only_to_run_a_flow(
    tmp_path: Path, fake_server: tuple[Path, Path]
) -> None:
    go, seen = fake_server
    settings = make_settings(tmp_path / "project", "http://127.0.0.1:9/v1")

    async def flow() -> int:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"{os.environ['PREFECT_API_URL']}/health")).status_code  # fmt: skip

    with guarded(settings, flows=True) as stop:
        url = os.environ["PREFECT_API_URL"]  # Prefect is pointed at it already
        with pytest.raises(httpx.ConnectError):  # the command goes on while it starts
            httpx.get(f"{url}/health", timeout=2)
        go.touch()  # the server's start-up ends (in a real run: ~4 s beside ~2.5 s of imports)
        assert stop.run(flow()) == 200  # run() waited for it
    assert json.loads(seen.read_text()) == {prefect_db.MIGRATE_ENV: None}  # no database yet


def test_a_set_up_project_starts_its_server_without_migrations(
    tmp_path: Path, fake_server: tuple[Path, Path]
) -> None:
    go, seen = fake_server
    go.touch()
    db = database_at(tmp_path / "home" / "prefect.db", "r1")  # what the first start leaves
    settings = make_settings(tmp_path / "project", "http://127.0.0.1:9/v1")

    async def flow() -> None:
        return None

    for _ in range(2):
        with guarded(settings, flows=True) as stop:
            stop.run(flow())
        migrate = json.loads(seen.read_text())[prefect_db.MIGRATE_ENV]
    assert migrate == "false"  # the second start: recorded after the first one was healthy
    assert json.loads(prefect_db.record_path(db).read_text())["revision"] == "r1"


def test_a_server_that_cannot_start_is_one_error_and_no_flow_runs(
    tmp_path: Path, fake_server: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prefect_api.TemporaryServer, "command", lambda self: [sys.executable, "-c", "raise SystemExit(7)"])  # fmt: skip
    settings = make_settings(tmp_path / "project", "http://127.0.0.1:9/v1")
    ran: list[bool] = []

    async def flow() -> None:
        ran.append(True)

    with pytest.raises(prefect_api.OrchestratorError, match="exited with code 7"):  # noqa: SIM117
        with guarded(settings, flows=True) as stop:
            stop.run(flow())
    assert ran == []


def test_the_log_filter_knows_errors_defined_after_it_was_installed() -> None:
    """guarded() installs it before the flows are imported (the server starts meanwhile); an
    error class their modules define later is still one Prefect must not repeat."""
    quiet = ExpectedFailure()

    class DefinedLater(AutodataError):
        pass

    message = "Finished in state Failed('Flow run encountered an exception: DefinedLater: no')"
    record = logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, message, None, None)
    assert quiet.filter(record) is False
