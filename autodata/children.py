"""Child processes that never outlive the pipeline: managed vLLM servers, the temporary Prefect
server.

Each child leads its own process group (a new session), so Ctrl-C in the pipeline's terminal
does not reach it and the whole group can be stopped at once. Two guards cover a pipeline that
dies without stopping it, even by SIGKILL: ``PR_SET_PDEATHSIG`` on the child (when started from
the main thread), and a detached watchdog (``autodata/llm/_reaper.py``) that kills the group once
the pipeline process is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from autodata.llm._reaper import group_alive

REAPER = Path(__file__).parent / "llm" / "_reaper.py"
_PR_SET_PDEATHSIG = 1


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGTERM the child when its parent thread dies.

    None off the main thread: the signal fires when the forking *thread* exits.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    # Resolved before fork: the child must not enter the dynamic loader (another thread may hold
    # its lock).
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def spawn(argv: list[str], env: Mapping[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new session, output to ``log``, dying with us."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
        preexec_fn=die_with_parent_hook(),
    )


def start_reaper(pgid: int, script: Path = REAPER) -> subprocess.Popen[bytes]:
    """The detached watchdog that kills group ``pgid`` once this process is gone."""
    return subprocess.Popen(
        [sys.executable, "-I", str(script), str(os.getpid()), str(pgid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_reaper(reaper: subprocess.Popen[bytes] | None) -> None:
    """Stop a watchdog whose group was stopped normally."""
    if reaper is not None:
        reaper.kill()
        reaper.wait()


def _wait_group_gone(proc: subprocess.Popen[bytes], wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        proc.poll()
        if not group_alive(proc.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the process group led by ``proc``; SIGKILL it if it lingers past ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if _wait_group_gone(proc, wait_s):
            break
    proc.wait()
