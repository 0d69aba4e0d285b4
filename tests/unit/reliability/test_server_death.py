"""A managed vLLM server killed mid-run (hardening issue, item 3): the pipeline restarts it once
and carries on; a second death stops the run with one clear message, and the rerun completes
without repeating the calls that had completed. The server is a fake vLLM python serving the
OpenAI API (``fake_vllm.py``, the scripted server's logic), so each start takes a second."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_loop import Outcome, project, run_loop
from rich.console import Console

from autodata.errors import BackendError
from autodata.llm.vllm_server import ServerRegistry
from autodata.progress import Reporter
from autodata.settings import ROLES, Models, Paths, RoleModel, Settings, Vllm

pytestmark = pytest.mark.usefixtures("prefect_harness")
FAKE = Path(__file__).with_name("fake_vllm.py")
MODEL = "fake-model"
CONCURRENCY = 4


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """What ``vllm.python`` points at: runs fake_vllm.py with this interpreter."""
    path = tmp_path / "fake-python"
    # drops "-m vllm.entrypoints.openai.api_server"; the rest are the server's arguments
    path.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    path.chmod(0o755)
    return path


def managed_settings(root: Path, python: Path) -> Settings:
    role = {"backend": "vllm", "model": MODEL, "max_retries": 2, "max_concurrency": CONCURRENCY}
    models = Models(**{r: RoleModel(**role, privileged=(r == "strong")) for r in ROLES})
    paths = Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})
    vllm = Vllm(python=python, startup_timeout_s=30.0, extra_args=[])
    return Settings(models=models, paths=paths, vllm=vllm)


def calls(log: Path) -> Counter[str]:
    """How often each request (by cache key) was answered; the log's lines: key role n."""
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(line.split()[0] for line in lines)


def repeats(log: Path) -> list[str]:
    """The log lines of requests answered more than once (for failure messages)."""
    again = {key for key, n in calls(log).items() if n > 1}
    return [line for line in log.read_text().splitlines() if line.split()[0] in again]


async def run(root: Path, python: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[Outcome, str]:  # fmt: skip
    """The loop on a fresh managed server; its outcome and the status lines it printed."""
    for key in ("FAKE_VLLM_DIE_AFTER", "FAKE_VLLM_DIE_ONCE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FAKE_VLLM_CALLS", str(root / "calls.log"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = io.StringIO()
    outcome = await run_loop(
        managed_settings(root, python), Reporter(Console(file=out), quiet=False)
    )
    return outcome, out.getvalue()


@pytest.fixture
async def clean(fake_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    outcome, _ = await run(project(tmp_path / "clean"), fake_python, monkeypatch)
    return outcome


async def test_a_server_killed_mid_run_is_restarted_once_and_the_run_completes(
    clean: Outcome, fake_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "dies-once")
    outcome, printed = await run(
        root, fake_python, monkeypatch,
        FAKE_VLLM_DIE_AFTER="20", FAKE_VLLM_DIE_ONCE=str(tmp_path / "died"),
    )  # fmt: skip
    assert (tmp_path / "died").exists()  # it did die (mid-judging: 2 + 2 + 6 calls come first)
    assert f"the vLLM server for {MODEL} died; restarted it" in printed
    assert outcome.rounds.equals(clean.rounds) and outcome.accepted.equals(clean.accepted)
    assert set(outcome.rounds["decision"]) == {"accepted"}  # no infra_error row either
    repeated = sum(n - 1 for n in calls(root / "calls.log").values())
    assert repeated <= CONCURRENCY, repeats(root / "calls.log")  # only calls in flight
    retried = sum(r["retries"] for r in outcome.metrics["llm"]["per_role"].values())
    assert 1 <= retried <= CONCURRENCY  # each call cut off by the death: one retry, restarted


async def test_a_second_death_stops_the_run_and_the_rerun_repeats_no_completed_call(
    clean: Outcome, fake_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "dies-twice")
    with pytest.raises(BackendError) as failed:
        await run(root, fake_python, monkeypatch, FAKE_VLLM_DIE_AFTER="15")
    message = str(failed.value)
    assert f"the vLLM server for '{MODEL}' died again after one restart" in message
    assert "vllm-fake-model.log" in message and "\n" not in message
    answered = calls(root / "calls.log")
    assert sum(answered.values()) >= 30  # two incarnations of 15

    outcome, _ = await run(root, fake_python, monkeypatch)  # a healthy server this time
    assert outcome.rounds.equals(clean.rounds) and outcome.accepted.equals(clean.accepted)
    again = calls(root / "calls.log") - answered
    assert sum(n for key, n in again.items() if key in answered) <= 2 * CONCURRENCY


def test_revive_restarts_a_dead_server_on_its_port_once(fake_python: Path, tmp_path: Path) -> None:
    cfg = Vllm(python=fake_python, startup_timeout_s=30.0, extra_args=[])
    paths = Paths(logs=tmp_path / "logs", models=tmp_path / "models")
    with ServerRegistry(cfg, paths) as registry:
        url, served = registry.url_for(MODEL)
        assert (served, registry.revive(MODEL)) == (MODEL, False)  # alive: nothing to do
        server = registry.servers()[MODEL]
        first = server.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        _wait_dead(server.is_alive)
        assert registry.revive(MODEL) is True
        assert server.is_alive() and server.pid != first and registry.url_for(MODEL)[0] == url
        second = server.pid
        assert second is not None
        os.kill(second, signal.SIGKILL)
        _wait_dead(server.is_alive)
        with pytest.raises(BackendError, match="died again after one restart"):
            registry.url_for(MODEL)


def _wait_dead(alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
