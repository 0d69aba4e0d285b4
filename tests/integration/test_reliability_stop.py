"""Clean ends through the real CLI (issue 12, items 1 and 2), with the temporary Prefect server
the pipeline starts itself (no ``PREFECT_API_URL``): SIGTERM to the process and Ctrl-C to its
process group stop a run mid-generate within seconds, with one line, exit 143 / 130, no child
process (Prefect's server, watchdogs) and no temporary file left, and the rerun completes; a
second run meanwhile is refused with one line naming the holder; after a SIGKILL with a
temporary file half-written, the Prefect server dies too and the rerun removes the file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from pipeline_repo import BIN, pipeline_env
from reliability_cli import make_project

from autodata._killpoints import ENV as KILL_ENV
from autodata.testing.roles import LoopScript
from autodata.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration
LATENCY_S = 0.5  # per reply: a run lasts long enough to be stopped mid-generate
STOPPED_WITHIN_S = 12.0  # the stop's own grace is 5 s; the rest is a busy 2-core machine


def temporary_prefect_env(server: ScriptedServer, **extra: str) -> dict[str, str]:
    """Every role on ``server``; no Prefect API, so the run starts its own temporary server."""
    env = pipeline_env(server.base_url, "", Path("/unused"))
    for key in ("PREFECT_API_URL", "PREFECT_HOME", KILL_ENV):
        env.pop(key, None)
    return env | extra


def start(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``autodata run --quiet`` in ``root``, leading its own process group (as in a terminal)."""
    return subprocess.Popen(
        [str(BIN / "autodata"), "--params", "params.yaml", "run", "--quiet"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def chats(server: ScriptedServer) -> int:
    return server.count(lambda r: r.path.endswith("/chat/completions"))


def wait_for_chats(server: ScriptedServer, proc: subprocess.Popen[str], n: int) -> None:
    deadline = time.monotonic() + 180
    while chats(server) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached generate"
        time.sleep(0.1)


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def still_alive(procs: list[psutil.Process], wait_s: float = 15.0) -> list[str]:
    """Those of ``procs`` still running (zombies aside) after up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return [" ".join(p.cmdline()[:4]) for p in alive]
        time.sleep(0.2)


def temp_files(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".tmp", ".old")]


def rerun(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = start(root, env)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize(
    ("sig", "to_group", "code"),
    [(signal.SIGTERM, False, 143), (signal.SIGINT, True, 130)],
    ids=["sigterm-to-process", "ctrl-c-to-group"],
)
def test_a_stop_mid_run_is_quick_quiet_clean_and_resumable(
    tmp_path: Path, sig: int, to_group: bool, code: int
) -> None:
    root = make_project(tmp_path / "project")
    with ScriptedServer(LoopScript(), latency_s=LATENCY_S) as server:
        env = temporary_prefect_env(server)
        run = start(root, env)
        wait_for_chats(server, run, 6)
        children = descendants(run.pid)
        assert any("uvicorn" in p.cmdline() for p in children)  # Prefect's temporary server

        second = subprocess.run([str(BIN / "autodata"), "--params", "params.yaml", "run", "--quiet"],
                                cwd=root, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        refused = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(refused) == 1, second.stderr
        assert refused[0].startswith("error: another autodata run") and f"pid {run.pid} " in refused[0]  # fmt: skip

        began = time.monotonic()
        if to_group:  # Ctrl-C in a terminal: the whole foreground group gets it
            os.killpg(run.pid, sig)
        else:
            os.kill(run.pid, sig)
        _, err = run.communicate(timeout=60)
        took = time.monotonic() - began
        assert run.returncode == code, err
        assert err.strip().splitlines() == [err.strip()] and err.startswith("stopped: ")
        assert "Rerun `autodata --params params.yaml run --quiet` to resume" in err
        assert took < STOPPED_WITHIN_S
        assert still_alive(children) == []
        assert temp_files(root) == []

        done = rerun(root, env)
        assert done.returncode == 0, done.stderr
        assert (root / "data" / "export" / "sft.jsonl").is_file()


def test_a_sigkill_leaves_no_prefect_server_and_the_rerun_removes_its_temporary_file(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path / "project")
    with ScriptedServer(LoopScript()) as server:
        label = "atomic:before-rename:challenges.parquet"
        killed = start(root, temporary_prefect_env(server, **{KILL_ENV: label}))
        seen: list[psutil.Process] = []
        while killed.poll() is None:  # the child list changes as the run goes
            seen += [p for p in descendants(killed.pid) if p not in seen]
            time.sleep(0.05)
        assert killed.returncode == -signal.SIGKILL
        assert any("uvicorn" in p.cmdline() for p in seen)
        assert still_alive(seen) == []  # before: Prefect's server lived on (~220 MB, its port)
        assert [Path(p).name.startswith(".challenges.parquet.") for p in temp_files(root)] == [True]  # fmt: skip

        done = rerun(root, temporary_prefect_env(server))
        assert done.returncode == 0, done.stderr
        assert temp_files(root) == []
