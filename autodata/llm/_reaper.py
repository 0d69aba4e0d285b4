"""Watchdog that kills a managed server's process group once the pipeline process is gone.

Run by path, detached in its own session, with only the standard library (no autodata import):

    python -I _reaper.py PARENT_PID PGID [GRACE_S]

It exits quietly when the server group disappears on its own (a normal ``stop()``), and when its
parent dies, even by SIGKILL, it sends SIGTERM to the group, then SIGKILL after ``GRACE_S``.
The parent is watched through ``os.getppid()``: a dead parent re-parents the reaper, so a
recycled PID can never fool it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

POLL_S = 0.25


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is left in group ``pgid``.

    Zombies are skipped: orphans wait for PID 1 to reap them, which can be slow or never happen
    in a container, and they hold no memory or ports.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return _signalable(pgid)
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _signalable(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the group, wait up to ``grace_s`` for it to empty, then SIGKILL what is left."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(POLL_S)


def watch(parent_pid: int, pgid: int, grace_s: float) -> None:
    """Block until the group is gone (return) or the parent is gone (kill the group)."""
    while group_alive(pgid):
        if os.getppid() != parent_pid:
            kill_group(pgid, grace_s)
            return
        time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    """Parse ``PARENT_PID PGID [GRACE_S]`` and watch."""
    parent_pid, pgid = int(argv[0]), int(argv[1])
    grace_s = float(argv[2]) if len(argv) > 2 else 10.0
    # Ctrl-C in the pipeline's terminal must not stop the watchdog before it has done its job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(parent_pid, pgid, grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
