"""The run's temporary Prefect API server, owned by the pipeline like a managed vLLM server, and
started off the run's critical path.

Without an API URL, Prefect starts a temporary server itself, but as a plain child in the
pipeline's process group and with nothing to stop it if the pipeline dies: Ctrl-C in the
terminal killed it under a running flow (minutes of websocket errors followed), and every
SIGKILL of the pipeline left it running (~220 MB, its port held). Here the same server command
runs as a guarded child (:mod:`autodata.children`: its own session, dies with the pipeline even
on SIGKILL), and Prefect is pointed at it through ``PREFECT_API_URL``. A server the user
configured (``PREFECT_API_URL`` or a Prefect profile) is used as it is.

Start-up: the server takes ~4 s to start here (~3 s of it importing Prefect's server), the
pipeline ~2.5 s to import its flows. So :class:`PrefectAPI` spawns the server first, before the
command imports Prefect, and nothing waits for it until a flow is about to run
(:meth:`PrefectAPI.wait_ready`, called by :meth:`autodata.stopping.StopOnSignal.run`): the two
start-ups overlap on two cores. Its database is migrated once per project, not at every start
(:mod:`autodata.prefect_db`).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import httpx

from autodata import children, prefect_db
from autodata.errors import OrchestratorError
from autodata.llm.vllm_server import free_port, log_tail
from autodata.third_party import prefect_database

STARTUP_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
_EPHEMERAL_ENV = {  # what Prefect's own temporary server runs with (no UI, no extra services)
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
_STOP_GRACE_S = 5.0
_DRAIN_S = 5.0


@contextmanager
def prefect_api(log_path: Path) -> Iterator[PrefectAPI]:
    """The Prefect API of a run (:class:`PrefectAPI`): its temporary server, if it needs one, is
    starting when this yields, and is stopped when the block ends."""
    api = PrefectAPI(log_path)
    try:
        yield api
    finally:
        api.close()


class PrefectAPI:
    """The API the run's flows report to: the configured one, or a temporary server (logging to
    ``log_path``), spawned at once and waited for only by :meth:`wait_ready`."""

    def __init__(self, log_path: Path) -> None:
        self._server: TemporaryServer | None = None
        # The environment tells at once; a Prefect profile only through Prefect's settings (~1 s
        # to import): when they are not imported yet, :meth:`reporting` reads it after the spawn.
        imported = "prefect.settings" in sys.modules
        self.url = _configured_url() if imported else os.environ.get("PREFECT_API_URL", "")
        if not self.url:
            self._server = TemporaryServer(log_path)
            self._server.spawn()
            self.url = self._server.api_url

    @contextmanager
    def reporting(self) -> Iterator[str]:
        """Point Prefect (its settings, and ``PREFECT_API_URL`` for threads and child processes)
        at the API; at the end, send its queued logs and events while the server still answers.
        A server named by the active Prefect profile replaces the temporary one."""
        configured = _configured_url()
        if configured and self._server is not None:
            self.close()
            self.url = configured
        with _pointed_at(self.url):
            try:
                yield self.url
            finally:
                _drain_workers()

    def wait_ready(self) -> None:
        """Block until the temporary server answers (at once when it already did, or for a
        configured one); raise :class:`OrchestratorError` if it cannot start."""
        if self._server is not None:
            self._server.wait_ready()

    def terminate(self) -> None:
        """SIGTERM the temporary server without waiting (:meth:`TemporaryServer.terminate`)."""
        if self._server is not None:
            self._server.terminate()

    def close(self) -> None:
        """Stop the temporary server, if any. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()


class TemporaryServer:
    """Prefect's ephemeral API server (uvicorn on 127.0.0.1) as a guarded child process."""

    def __init__(
        self, log_path: Path, port: int = 0, environ: Mapping[str, str] | None = None
    ) -> None:
        self.log_path = log_path
        self.port = port or free_port()
        self._environ = environ  # None: this process's, as it is at the start
        self._proc: subprocess.Popen[bytes] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._ready = False
        self._database: Path | None = None
        self._version = ""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def pid(self) -> int | None:
        """PID (and process-group id) of the server, or None when not running."""
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The argv Prefect itself uses for its temporary server."""
        return [
            sys.executable,
            *("-m", "uvicorn", "--app-dir", str(_prefect_dir().parent)),
            *("--factory", "prefect.server.api.server:create_app"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--log-level", "error", "--lifespan", "on"),
        ]

    def start(self) -> None:
        """Start the server and block until ``/api/health`` answers; raise if it does not."""
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the server process and its watchdog; return at once."""
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        except OSError as exc:
            raise OrchestratorError(
                f"cannot write the Prefect server log {self.log_path}: {exc.strerror or exc}; "
                "free disk space or fix permissions (paths.logs) and rerun"
            ) from None
        base = dict(os.environ if self._environ is None else self._environ)
        database, version = prefect_database(base), _prefect_version()
        env = base | _EPHEMERAL_ENV | prefect_db.server_env(database, version, base)
        self._proc = children.spawn(self.command(), env, self._log)
        self._reaper = children.start_reaper(self._proc.pid)
        self._database, self._version = database, version

    def wait_ready(self) -> None:
        """Block until ``/api/health`` answers (once; later calls return at once), then record
        that the database is migrated; on failure stop the server and raise."""
        if self._ready:
            return
        try:
            self._wait_healthy(_startup_timeout())
        except BaseException:
            self.stop()
            raise
        self._ready = True
        prefect_db.remember(self._database, self._version)

    def stop(self) -> None:
        """Stop the server's process group and its watchdog. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            children.kill_group(proc, _STOP_GRACE_S)
        reaper, self._reaper = self._reaper, None
        children.stop_reaper(reaper)
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def terminate(self) -> None:
        """SIGTERM the server's group without waiting (the process is about to end; its
        watchdog finishes the job)."""
        if self._proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)

    def _wait_healthy(self, timeout_s: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                code = self._proc.poll()
                if code is not None:
                    raise self._failure(f"exited with code {code} while starting")
                with suppress(httpx.HTTPError):
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                time.sleep(0.1)
        raise self._failure(f"was not healthy after {timeout_s:g} s ({STARTUP_ENV})")

    def _failure(self, what: str) -> OrchestratorError:
        if self._log is not None:
            self._log.flush()
        last = log_tail(self.log_path, 1).strip() or "empty log"
        home = (self._environ or os.environ).get("PREFECT_HOME", "~/.prefect")
        return OrchestratorError(
            f"the temporary Prefect server {what}: {last} (see {self.log_path}); check free disk "
            f"space and permissions of PREFECT_HOME={home}, or set PREFECT_API_URL to a running "
            "server (`prefect server start`)"
        )


def _configured_url() -> str:
    """The API URL from the environment or the active Prefect profile, if any ("" if none).
    Importing Prefect's settings takes ~1 s here."""
    from prefect.settings import get_current_settings

    return os.environ.get("PREFECT_API_URL") or get_current_settings().api.url or ""


def _prefect_dir() -> Path:
    """Prefect's package directory, found without importing it (~1 s here)."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise OrchestratorError("Prefect is not installed in this environment; reinstall autodata")
    return Path(spec.origin).parent


def _prefect_version() -> str:
    """The installed Prefect's version, without importing it."""
    from importlib.metadata import version

    return version("prefect")


def _startup_timeout() -> float:
    try:
        return float(os.environ.get(STARTUP_ENV, "60"))
    except ValueError:
        return 60.0


@contextmanager
def _pointed_at(url: str) -> Iterator[None]:
    """Prefect's settings and ``PREFECT_API_URL`` (for threads and child processes) at ``url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


def _drain_workers() -> None:
    """Send Prefect's queued logs and events while the server still answers (as Prefect's own
    test harness does), so nothing retries against a stopped server at exit."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=_DRAIN_S)  # every queue service: events and API logs
