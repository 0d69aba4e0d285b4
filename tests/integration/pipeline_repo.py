"""Helpers for tests/integration/test_dvc_pipeline.py: a throwaway git+DVC copy of the project,
the environment that points every role at the scripted server, a loopback Prefect server, and
command runners.

Its fixtures live in the test module, not in a ``tests/integration/conftest.py``: without
packages, pytest imports every conftest as the module ``conftest``, and a second one would shadow
``tests/conftest.py`` for the tests that ``from conftest import ...``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from autodata.settings import ROLES

REPO = Path(__file__).resolve().parents[2]
# What a fresh clone holds that the pipeline needs: config, DVC files, sources, the code (deps).
TRACKED = ["pyproject.toml", "params.yaml", "dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config",
           ".dvc/.gitignore", "data/sources", "autodata", "flows", "tasks"]  # fmt: skip
BIN = Path(sys.executable).parent  # this venv's bin: `autodata`, `dvc`, `prefect`


def make_repo(target: Path) -> Path:
    """Copy :data:`TRACKED` into ``target``, ``git init`` it and commit (no outputs, no caches).

    Its params.yaml runs the fixed 3+3 gate: these tests count requests of exactly 3 + 3
    rollouts per candidate (the sequential gate draws as the evidence asks)."""
    for name in TRACKED:
        src, dst = REPO / name, target / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    params = target / "params.yaml"
    text = params.read_text()
    pinned = re.sub(r"(?m)^  method: sequential\b", "  method: fixed     ", text)
    assert pinned != text, "params.yaml: gate.method line not found"
    params.write_text(pinned)
    git(target, "init", "-q", "-b", "main")
    git(target, "config", "user.email", "tests@autodata.invalid")
    git(target, "config", "user.name", "autodata tests")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "fresh clone")
    return target


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo, dict(os.environ)).stdout


def pipeline_env(base_url: str, prefect_url: str, prefect_home: Path) -> dict[str, str]:
    """Every role on the scripted server (``AUTODATA_MODELS__<ROLE>__*``), the loopback Prefect
    server, and this venv's ``bin`` first on PATH (as an activated venv would have it)."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for role in ROLES:
        prefix = f"AUTODATA_MODELS__{role.upper()}__"
        env |= {prefix + "BACKEND": "openai", prefix + "BASE_URL": base_url, prefix + "MODEL": "scripted"}  # fmt: skip
    env |= {"PREFECT_API_URL": prefect_url, "PREFECT_HOME": str(prefect_home), "COLUMNS": "200"}
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], ok: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run a command; with ``ok`` assert it succeeded, showing its output if not."""
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert proc.returncode == 0, (
            f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def ran_stages(output: str) -> list[str]:
    """The stages ``dvc repro`` / ``dvc exp run`` actually ran, from its output."""
    return [
        line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def background(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[Any]]:  # fmt: skip
    """A process in its own session, stopped (its whole group, by id) when the block ends."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def prefect_server(home: Path, timeout: float = 120) -> Iterator[str]:
    """``prefect server start`` on a free loopback port with ``PREFECT_HOME`` = ``home``; yields
    the API URL once ``/api/health`` answers."""
    port = free_port()
    env = dict(os.environ) | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                              "PREFECT_UI_ENABLED": "false", "DO_NOT_TRACK": "1"}  # fmt: skip
    args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/api"
    with background(args, home, env, home / "server.log") as proc:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            log = (home / "server.log").read_text()[-2000:]
            assert proc.poll() is None, f"prefect server exited:\n{log}"
            assert time.monotonic() < deadline, f"prefect server not healthy in {timeout}s:\n{log}"
            time.sleep(0.5)
        yield url


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
