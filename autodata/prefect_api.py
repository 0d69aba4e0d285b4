"""The run's temporary Prefect API server, owned by the pipeline like a managed vLLM server.

Without an API URL, Prefect starts a temporary server itself, but as a plain child in the
pipeline's process group and with nothing to stop it if the pipeline dies: Ctrl-C in the
terminal killed it under a running flow (minutes of websocket errors followed), and every
SIGKILL of the pipeline left it running (~220 MB, its port held). Here the same server command
runs as a guarded child (:mod:`autodata.children`: its own session, dies with the pipeline even
on SIGKILL), and Prefect is pointed at it through ``PREFECT_API_URL``. A server the user
configured (``PREFECT_API_URL`` or a Prefect profile) is used as it is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import httpx

from autodata import children
from autodata.errors import OrchestratorError
from autodata.llm.vllm_server import free_port, log_tail

STARTUP_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
_EPHEMERAL_ENV = {  # what Prefect's own temporary server runs with (no UI, no extra services)
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
_STOP_GRACE_S = 5.0
_DRAIN_S = 5.0


@contextmanager
def prefect_api(
    log_path: Path, on_hard_stop: Callable[[Callable[[], object]], None] | None = None
) -> Iterator[str]:
    """Yield the API URL the run's flows report to: the configured one, or a temporary server
    started here (logging to ``log_path``) and stopped when the block ends.

    ``on_hard_stop`` registers :meth:`TemporaryServer.terminate` with a :class:`StopOnSignal`.
    """
    configured = _configured_url()
    if configured:
        yield configured
        return
    server = TemporaryServer(log_path)
    if on_hard_stop is not None:
        on_hard_stop(server.terminate)
    server.start()
    try:
        with _pointed_at(server.api_url):
            try:
                yield server.api_url
            finally:
                _drain_workers()
    finally:
        server.stop()


class TemporaryServer:
    """Prefect's ephemeral API server (uvicorn on 127.0.0.1) as a guarded child process."""

    def __init__(self, log_path: Path, port: int = 0) -> None:
        self.log_path = log_path
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def pid(self) -> int | None:
        """PID (and process-group id) of the server, or None when not running."""
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The argv Prefect itself uses for its temporary server."""
        import prefect

        return [
            sys.executable,
            *("-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent)),
            *("--factory", "prefect.server.api.server:create_app"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--log-level", "error", "--lifespan", "on"),
        ]

    def start(self) -> None:
        """Start the server and block until ``/api/health`` answers; raise if it does not."""
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        except OSError as exc:
            raise OrchestratorError(
                f"cannot write the Prefect server log {self.log_path}: {exc.strerror or exc}; "
                "free disk space or fix permissions (paths.logs) and rerun"
            ) from None
        self._proc = children.spawn(self.command(), os.environ | _EPHEMERAL_ENV, self._log)
        self._reaper = children.start_reaper(self._proc.pid)
        try:
            self._wait_healthy(_startup_timeout())
        except BaseException:
            self.stop()
            raise

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
        home = os.environ.get("PREFECT_HOME", "~/.prefect")
        return OrchestratorError(
            f"the temporary Prefect server {what}: {last} (see {self.log_path}); check free disk "
            f"space and permissions of PREFECT_HOME={home}, or set PREFECT_API_URL to a running "
            "server (`prefect server start`)"
        )


def _configured_url() -> str | None:
    """The API URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    return os.environ.get("PREFECT_API_URL") or get_current_settings().api.url


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
