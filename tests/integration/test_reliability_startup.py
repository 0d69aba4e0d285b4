"""Start-up off the critical path (issue 12, item 6), through the real CLI and Prefect's real
temporary server: a project's first ``autodata run`` migrates Prefect's new database and records
the revision; the next run starts the server with migrations off (its environment says so), and
Prefect records that run's flows in the same database. No timing is asserted (the figures are
``autodata bench process``'s); how the server's start overlaps the command's own is in
``tests/unit/reliability/test_prefect_startup.py``."""

from __future__ import annotations

import contextlib
import importlib.metadata
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from pipeline_repo import BIN, pipeline_env
from reliability_cli import make_project

from autodata import prefect_db
from autodata._killpoints import ENV as KILL_ENV
from autodata.testing.roles import LoopScript
from autodata.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration


def run_watched(root: Path, server: ScriptedServer) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:  # fmt: skip
    """``autodata run --quiet`` with no Prefect API configured (it starts its own server), and
    the environment that server was started with."""
    env = pipeline_env(server.base_url, "", Path("/unused"))
    env = {k: v for k, v in env.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME", KILL_ENV)}
    argv = [str(BIN / "autodata"), "--params", "params.yaml", "run", "--quiet"]
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 300
    while proc.poll() is None and not seen and time.monotonic() < deadline:
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "uvicorn" in child.cmdline():
                    seen = child.environ()
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), seen


def flow_runs(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as con:
        return int(con.execute("SELECT count(*) FROM flow_run").fetchone()[0])


def test_prefects_database_is_migrated_by_a_projects_first_run_only(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    database = root / ".prefect" / "prefect.db"
    with ScriptedServer(LoopScript()) as server:
        first, first_env = run_watched(root, server)
        assert first.returncode == 0, first.stderr
        assert first_env and prefect_db.MIGRATE_ENV not in first_env  # Prefect's default: migrate
        record = prefect_db.read_record(database)
        version = importlib.metadata.version("prefect")
        assert record == {"prefect": version, "revision": prefect_db.revision(database)}
        before = flow_runs(database)

        second, second_env = run_watched(root, server)
    assert second.returncode == 0, second.stderr
    assert second_env[prefect_db.MIGRATE_ENV] == "false"
    assert flow_runs(database) > before  # the unmigrated start recorded the rerun's flows
    assert prefect_db.read_record(database) == record
