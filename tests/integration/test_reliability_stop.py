"""Clean ends through the real CLI (issue 12, items 1 and 2), with the temporary Prefect server
the pipeline starts itself (no ``PREFECT_API_URL``): SIGTERM to the process and Ctrl-C to its
process group stop a run mid-generate within seconds, with one line, exit 143 / 130, no child
process (Prefect's server, watchdogs) and no temporary file left, and the rerun completes; a
second run meanwhile is refused with one line naming the holder; after a SIGKILL with a
temporary file half-written, the Prefect server and a managed vLLM server die too and the rerun
removes the file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import yaml
from pipeline_repo import BIN, pipeline_env
from reliability_cli import PARAMS, make_project

from autodata._killpoints import ENV as KILL_ENV
from autodata.settings import ROLES
from autodata.testing.roles import LoopScript
from autodata.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration
LATENCY_S = 0.5  # per reply: a run lasts long enough to be stopped mid-generate
STOPPED_WITHIN_S = 12.0  # the stop's own grace is 5 s; the rest is a busy 2-core machine
FAKE_VLLM = Path(__file__).resolve().parents[1] / "unit" / "reliability" / "fake_vllm.py"


def temporary_prefect_env(server: ScriptedServer | None, **extra: str) -> dict[str, str]:
    """Every role on ``server`` (None: as params.yaml says); no Prefect API, so the run starts
    its own temporary server."""
    env = pipeline_env(server.base_url if server else "", "", Path("/unused"))
    unset = ("PREFECT_API_URL", "PREFECT_HOME", KILL_ENV)
    return {k: v for k, v in env.items() if k not in unset and (server or not k.startswith("AUTODATA_MODELS__"))} | extra  # fmt: skip


def start(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``autodata run --quiet`` in ``root``, leading its own process group (as in a terminal)."""
    return subprocess.Popen(
        [str(BIN / "autodata"), "--params", "params.yaml", "run", "--quiet"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def wait_for(calls: Callable[[], int], proc: subprocess.Popen[str], n: int) -> None:
    """Until ``calls()`` (chat requests answered so far) reaches ``n``: mid-generate."""
    deadline = time.monotonic() + 180
    while calls() < n:
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
    ("sig", "to_group", "code", "managed"),
    [(signal.SIGTERM, False, 143, False), (signal.SIGINT, True, 130, True)],
    ids=["sigterm-to-process", "ctrl-c-to-group-with-a-managed-server"],
)
def test_a_stop_mid_run_is_quick_quiet_clean_and_resumable(
    tmp_path: Path, sig: int, to_group: bool, code: int, managed: bool
) -> None:
    calls_log = tmp_path / "fake-vllm-calls.log"
    params = managed_params(tmp_path) if managed else PARAMS
    root = make_project(tmp_path / "project", params)
    with ScriptedServer(LoopScript(), latency_s=LATENCY_S) as server:
        fake = {"FAKE_VLLM_LATENCY_S": str(LATENCY_S), "FAKE_VLLM_CALLS": str(calls_log)}
        env = temporary_prefect_env(None, **fake) if managed else temporary_prefect_env(server)

        def answered() -> int:
            if managed:
                return len(calls_log.read_text().splitlines()) if calls_log.exists() else 0
            return server.count(lambda r: r.path.endswith("/chat/completions"))

        run = start(root, env)
        wait_for(answered, run, 6)
        children = descendants(run.pid)
        commands = " | ".join(" ".join(p.cmdline()) for p in children)
        assert "uvicorn" in commands and (not managed or "fake_vllm.py" in commands), commands

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
        assert still_alive(children) == []  # Prefect's server, the vLLM one, their watchdogs
        assert temp_files(root) == []

        done = rerun(root, env)
        assert done.returncode == 0, done.stderr
        assert (root / "data" / "export" / "sft.jsonl").is_file()


def managed_params(tmp_path: Path) -> str:
    """params.yaml: every role on one managed "vLLM" server, the fake one of the unit tests (the
    scripted server behind vLLM's command line; it starts in a second)."""
    python = tmp_path / "fake-python"  # drops "-m vllm.entrypoints.openai.api_server"
    python.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{FAKE_VLLM}" "$@"\n')
    python.chmod(0o755)
    roles = {r: {"backend": "vllm", "model": "fake-model", "privileged": r == "strong"} for r in ROLES}  # fmt: skip
    params = {"models": roles, "vllm": {"python": str(python), "extra_args": []},
              "loop": {"max_rounds": 2, "max_infra_retries": 1}}  # fmt: skip
    return yaml.safe_dump(params)


def test_a_sigkill_leaves_no_server_and_the_rerun_removes_its_temporary_file(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path / "project", managed_params(tmp_path))
    env = temporary_prefect_env(None)
    killed = start(root, env | {KILL_ENV: "atomic:before-rename:challenges.parquet"})
    seen: dict[psutil.Process, str] = {}
    while killed.poll() is None:  # the child list changes as the run goes
        for child in descendants(killed.pid):
            with contextlib.suppress(psutil.Error):
                seen[child] = " ".join(child.cmdline())
        time.sleep(0.05)
    assert killed.returncode == -signal.SIGKILL, killed.communicate()
    commands = " | ".join(seen.values())
    assert "uvicorn" in commands and "fake_vllm.py" in commands, commands
    assert still_alive(list(seen)) == []  # before: Prefect's server lived on (~220 MB, its port)
    assert [Path(p).name.startswith(".challenges.parquet.") for p in temp_files(root)] == [True]  # fmt: skip

    done = rerun(root, env)
    assert done.returncode == 0, done.stderr
    assert temp_files(root) == []


def test_a_prefect_home_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    with ScriptedServer(LoopScript()) as server:
        env = temporary_prefect_env(server, PREFECT_HOME="/dev/null/prefect")
        ran = rerun(root, env)
    assert ran.returncode == 3, ran.stderr
    line = one_line(ran.stderr)
    assert line.startswith("error: the temporary Prefect server exited") and "PREFECT_HOME=/dev/null/prefect" in line  # fmt: skip
    assert server.count() == 0


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]
