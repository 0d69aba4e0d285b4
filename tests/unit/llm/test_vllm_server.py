"""VllmServer and ServerRegistry against a fake vLLM: a script that serves /health on --port.

The fake stands in for ``Vllm.python``; like vLLM it spawns worker processes, so the tests can
check that the whole process group dies (on stop, on SIGTERM, and when the parent is SIGKILLed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import pytest
from pydantic import ValidationError

from autodata import env
from autodata.errors import BackendError
from autodata.llm import vllm_server
from autodata.llm.embedded import COMPLETE_MARKER, EMBEDDED_NAME, resolve_model
from autodata.llm.vllm_server import ServerRegistry, VllmServer, free_core, free_port
from autodata.settings import EMBEDDED_MODEL, Paths, ServerOptions, Vllm

FAKE_VLLM = f"""#!{sys.executable}
import http.server, json, os, signal, subprocess, sys, time
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
mode = os.environ.get("FAKE_VLLM_MODE", "ok")
print("fake vllm argv", json.dumps(args), flush=True)
if mode == "fail":
    print("RuntimeError: fake engine failed to allocate KV cache", flush=True)
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
kid = ("trap '' TERM; " if mode == "stubborn" else "") + "exec sleep 600"
kids = [subprocess.Popen(["sh", "-c", kid]) for _ in range(2)]
pid_file = os.environ.get("FAKE_VLLM_PIDS")
if pid_file:
    with open(pid_file + ".tmp", "w") as fh:
        json.dump([os.getpid()] + [k.pid for k in kids], fh)
    os.replace(pid_file + ".tmp", pid_file)
if mode == "hang":
    time.sleep(600)
time.sleep(float(os.environ.get("FAKE_VLLM_DELAY", "0.2")))

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "fake-vllm-python"
    path.write_text(FAKE_VLLM)
    path.chmod(0o755)
    return path


@pytest.fixture
def cfg(fake_python: Path) -> Vllm:
    return Vllm(python=fake_python, startup_timeout_s=20.0, kv_cache_gib=2)


@pytest.fixture
def pid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pids.json"
    monkeypatch.setenv("FAKE_VLLM_PIDS", str(path))
    return path


def read_pids(pid_file: Path, timeout_s: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while not pid_file.exists():
        assert time.monotonic() < deadline, "fake server never wrote its pids"
        time.sleep(0.05)
    return list(json.loads(pid_file.read_text()))


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_all_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (alive := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def test_start_waits_for_health_and_serves_on_base_url(cfg: Vllm, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_DELAY", "1.5")
    server = VllmServer("some/model", "served", cfg, tmp_path / "logs" / "s.log")
    t0 = time.monotonic()
    with server:
        assert time.monotonic() - t0 >= 1.5
        assert server.is_alive()
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert httpx.get(f"http://127.0.0.1:{server.port}/health").status_code == 200
    assert not server.is_alive()
    assert server.pid is None


def test_command_and_environment_carry_the_measured_flags(cfg: Vllm, tmp_path: Path):
    (tmp_path / "model").mkdir()
    server = VllmServer(tmp_path / "model", "name", cfg, tmp_path / "s.log")
    cmd = server.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    opts = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert opts["--model"] == str(tmp_path / "model")
    assert opts["--served-model-name"] == "name"
    assert opts["--port"] == str(server.port)
    assert json.loads(opts["--structured-outputs-config"]) == {
        "backend": "guidance",
        "disable_any_whitespace": True,
    }
    assert cmd[-1] == "--enforce-eager"
    env = server.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"


def test_per_model_options_shape_that_model_s_server_only(cfg: Vllm, tmp_path: Path):
    options = ServerOptions(
        max_model_len=8192, tensor_parallel_size=2, data_parallel_size=4,
        gpu_memory_utilization=0.85, kv_cache_gib=6, extra_args=["--enable-prefix-caching"],
    )  # fmt: skip
    cmd = VllmServer("Qwen/Qwen3-8B", "q", cfg, tmp_path / "s.log", options).command()
    opts = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert opts["--max-model-len"] == "8192" and opts["--tensor-parallel-size"] == "2"
    assert opts["--data-parallel-size"] == "4" and opts["--gpu-memory-utilization"] == "0.85"
    assert cmd[-1] == "--enable-prefix-caching" and "--enforce-eager" not in cmd
    plain = VllmServer("Qwen/Qwen3-8B", "q", cfg, tmp_path / "s.log").command()
    assert "--tensor-parallel-size" not in plain and plain[-1] == "--enforce-eager"
    env = VllmServer("Qwen/Qwen3-8B", "q", cfg, tmp_path / "s.log", options).environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "6"


def test_a_hub_id_may_download_but_a_local_directory_stays_offline(
    cfg: Vllm, tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(
        env, "SET_HERE", {"HF_HUB_OFFLINE"}
    )  # the pipeline's default, not the user's
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = VllmServer("Qwen/Qwen3-8B", "q", cfg, tmp_path / "s.log").environment()
    assert hub.get("HF_HUB_OFFLINE") != "1" and hub["VLLM_NO_USAGE_STATS"] == "1"
    local = VllmServer(tmp_path, "q", cfg, tmp_path / "s.log").environment()
    assert local["HF_HUB_OFFLINE"] == "1"


def test_settings_carry_per_model_server_options() -> None:
    vllm = Vllm(models={"Qwen/Qwen3-8B": {"tensor_parallel_size": 2}})
    assert vllm.models["Qwen/Qwen3-8B"].tensor_parallel_size == 2
    with pytest.raises(ValidationError):
        Vllm(models={"m": {"tensor_parallel_sise": 2}})


def test_startup_failure_reports_log_tail(cfg: Vllm, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "fail")
    server = VllmServer("m", "m", cfg, tmp_path / "s.log")
    with pytest.raises(BackendError) as err:
        server.start()
    msg = str(err.value)
    assert "exited with code 3" in msg
    assert "fake engine failed to allocate KV cache" in msg
    assert str(tmp_path / "s.log") in msg
    assert not server.is_alive()


def test_startup_timeout_kills_the_group(cfg: Vllm, tmp_path: Path, monkeypatch, pid_file: Path):
    monkeypatch.setenv("FAKE_VLLM_MODE", "hang")
    cfg = cfg.model_copy(update={"startup_timeout_s": 1.0})
    with pytest.raises(BackendError, match="not healthy after 1s"):
        VllmServer("m", "m", cfg, tmp_path / "s.log").start()
    pids = read_pids(pid_file)
    assert wait_all_gone(pids, 5.0) == []


def test_missing_python_names_the_setup_script(tmp_path: Path):
    cfg = Vllm(python=tmp_path / "nope" / "python")
    with pytest.raises(BackendError, match=r"scripts/setup-vllm\.sh"):
        VllmServer("m", "m", cfg, tmp_path / "s.log").start()


def test_stop_kills_the_whole_group_and_is_idempotent(cfg: Vllm, tmp_path: Path, pid_file: Path):
    server = VllmServer("m", "m", cfg, tmp_path / "s.log")
    server.start()
    pids = read_pids(pid_file)
    assert len(pids) == 3 and all(running(p) for p in pids)
    server.stop()
    assert wait_all_gone(pids, 2.0) == []
    server.stop()


def test_stop_escalates_to_sigkill(cfg: Vllm, tmp_path: Path, monkeypatch, pid_file: Path):
    monkeypatch.setenv("FAKE_VLLM_MODE", "stubborn")
    monkeypatch.setattr(vllm_server, "_STOP_GRACE_S", 0.5)
    server = VllmServer("m", "m", cfg, tmp_path / "s.log")
    server.start()
    pids = read_pids(pid_file)
    server.stop()
    assert wait_all_gone(pids, 2.0) == []


def test_port_zero_picks_distinct_free_ports(cfg: Vllm, tmp_path: Path):
    assert cfg.port == 0
    with (
        VllmServer("a", "a", cfg, tmp_path / "a.log") as a,
        VllmServer("b", "b", cfg, tmp_path / "b.log") as b,
    ):
        assert a.port != b.port and 0 not in (a.port, b.port)
        for server in (a, b):
            assert httpx.get(server.base_url.removesuffix("/v1") + "/health").status_code == 200


def test_fixed_port_is_used(cfg: Vllm, tmp_path: Path):
    port = free_port()
    with VllmServer("a", "a", cfg.model_copy(update={"port": port}), tmp_path / "a.log") as s:
        assert s.base_url == f"http://127.0.0.1:{port}/v1"


PARENT = """
import sys, threading, time
from pathlib import Path
from autodata.llm import vllm_server
from autodata.llm.vllm_server import VllmServer
from autodata.settings import Vllm
if sys.argv[3] == "no-reaper":  # an empty script: only PDEATHSIG is left
    vllm_server._REAPER = Path("/dev/null")
server = VllmServer("m", "m", Vllm(python=Path(sys.argv[1])), Path(sys.argv[2]))
if sys.argv[3] == "thread":  # no PDEATHSIG off the main thread: the reaper alone must do it
    t = threading.Thread(target=server.start); t.start(); t.join()
else:
    server.start()
print("READY", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_sigkilled_parent_leaves_no_server_process(
    fake_python: Path, tmp_path: Path, pid_file: Path, where: str
):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(fake_python), str(tmp_path / "s.log"), where],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "READY"
        pids = read_pids(pid_file)
        assert all(running(p) for p in pids)
        parent.kill()
        parent.wait()
        assert wait_all_gone(pids, 5.0) == []
    finally:
        parent.kill()
        parent.wait()


def test_pdeathsig_alone_stops_the_api_process(fake_python: Path, tmp_path: Path, pid_file: Path):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(fake_python), str(tmp_path / "s.log"), "no-reaper"],
        stdout=subprocess.PIPE,
        text=True,
    )
    leader, *workers = [0]
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "READY"
        leader, *workers = read_pids(pid_file)
        parent.kill()
        parent.wait()
        assert wait_all_gone([leader], 5.0) == []
    finally:
        parent.kill()
        parent.wait()
        for pid in workers:  # PDEATHSIG reaches only the API process: the reaper's job
            os.kill(pid, signal.SIGKILL)


def test_registry_shares_one_server_per_model(cfg: Vllm, tmp_path: Path):
    paths = Paths(models=tmp_path / "models", logs=tmp_path / "logs")
    with ServerRegistry(cfg, paths) as registry:
        url_a, name_a = registry.url_for("model-a")
        assert registry.url_for("model-a") == (url_a, name_a)
        url_b, name_b = registry.url_for("model-b")
        assert (name_a, name_b) == ("model-a", "model-b")
        assert url_a != url_b
        servers = registry.servers()
        assert set(servers) == {"model-a", "model-b"}
        assert (tmp_path / "logs" / "vllm-model-a.log").is_file()
    assert not any(s.is_alive() for s in servers.values())
    assert registry.servers() == {}


def test_a_second_cpu_server_binds_to_the_core_the_first_leaves_free(
    cfg: Vllm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    with ServerRegistry(cfg, Paths(logs=tmp_path)) as registry:
        registry.url_for("model-a")
        registry.url_for("model-b")
        first, second = (registry.servers()[m].environment() for m in ("model-a", "model-b"))
    assert "VLLM_CPU_OMP_THREADS_BIND" not in first  # vLLM's own choice: core 0, 1 reserved
    assert second["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert free_core() is None


def test_the_user_s_core_binding_wins_over_the_model_s_and_the_registry_s(
    cfg: Vllm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    options = ServerOptions(cpu_cores="0-1")
    assert VllmServer("m", "m", cfg, tmp_path / "s.log", options, "1").environment()["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"  # fmt: skip
    assert VllmServer("m", "m", cfg, tmp_path / "s.log", None, "1").environment()["VLLM_CPU_OMP_THREADS_BIND"] == "1"  # fmt: skip
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0")
    assert VllmServer("m", "m", cfg, tmp_path / "s.log", options, "1").environment()["VLLM_CPU_OMP_THREADS_BIND"] == "0"  # fmt: skip
    with pytest.raises(ValidationError):
        ServerOptions(cpu_cores="all")


def test_registry_restores_signal_handlers_on_close(cfg: Vllm, tmp_path: Path):
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    registry = ServerRegistry(cfg, Paths(logs=tmp_path))
    registry.url_for("m")
    assert signal.getsignal(signal.SIGTERM) != before[0]
    registry.close()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    registry.close()


def test_registry_restarts_a_dead_server_once_then_reports_it(cfg: Vllm, tmp_path: Path):
    with ServerRegistry(cfg, Paths(logs=tmp_path)) as registry:
        url = registry.url_for("m")
        server = registry.servers()["m"]
        os.killpg(server.pid or 0, signal.SIGKILL)
        time.sleep(0.3)
        assert registry.url_for("m") == url and server.is_alive()  # restarted, same port
        os.killpg(server.pid or 0, signal.SIGKILL)
        time.sleep(0.3)
        with pytest.raises(BackendError, match="died again after one restart"):
            registry.url_for("m")


REGISTRY_PARENT = """
import sys, time
from pathlib import Path
from autodata.llm.vllm_server import ServerRegistry
from autodata.settings import Paths, Vllm
registry = ServerRegistry(Vllm(python=Path(sys.argv[1])), Paths(logs=Path(sys.argv[2])))
registry.url_for("m")
print("READY", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_registry_stops_servers_on_signal(
    fake_python: Path, tmp_path: Path, pid_file: Path, sig: signal.Signals
):
    parent = subprocess.Popen(
        [sys.executable, "-c", REGISTRY_PARENT, str(fake_python), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "READY"
        pids = read_pids(pid_file)
        parent.send_signal(sig)
        # The previous handler still runs: default SIGTERM kills, SIGINT raises KeyboardInterrupt
        # (an uncaught KeyboardInterrupt makes Python exit by SIGINT too).
        assert parent.wait(timeout=15) == -sig
        assert wait_all_gone(pids, 1.0) == []
    finally:
        parent.kill()
        parent.wait()


def test_resolve_model_passes_other_models_through(tmp_path: Path):
    assert resolve_model("/models/llama", tmp_path / "no-python", tmp_path) == (
        "/models/llama",
        "/models/llama",
    )


def test_resolve_embedded_reuses_a_completed_conversion(tmp_path: Path):
    done = tmp_path / EMBEDDED_NAME
    done.mkdir()
    (done / COMPLETE_MARKER).write_text("ok")
    assert resolve_model(EMBEDDED_MODEL, tmp_path / "no-python", tmp_path) == (EMBEDDED_NAME, done)


def test_resolve_embedded_without_vllm_env_names_the_fix(tmp_path: Path):
    with pytest.raises(BackendError, match=r"scripts/setup-vllm\.sh"):
        resolve_model(EMBEDDED_MODEL, tmp_path / "no-python", tmp_path / "models")


def test_failed_conversion_leaves_no_model_dir(tmp_path: Path):
    gguf = tmp_path / "m.gguf"
    gguf.write_text("not really gguf")
    fake = tmp_path / "python"
    fake.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$2" = "-c" ]; then echo {gguf}; exit 0; fi
        mkdir -p "$4" && echo half > "$4/model.safetensors"
        echo "OSError: disk full (fake)" >&2
        exit 1
        """)
    )
    fake.chmod(0o755)
    models = tmp_path / "models"
    with pytest.raises(BackendError, match=r"disk full \(fake\)"):
        resolve_model(EMBEDDED_MODEL, fake, models)
    assert list(models.iterdir()) == []
