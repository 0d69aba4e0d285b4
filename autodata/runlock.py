"""One run per project at a time, and no leftovers from a killed one.

``autodata run`` and the stage commands that write the project's data hold an exclusive lock on
``Paths.lock_file`` (``filelock``: the kernel's ``flock``, released when the
holder dies, even by SIGKILL). A second run does not wait and does not bill a second set of
calls: it stops with one line naming the holder's pid and command, which the holder writes into
the lock file while it holds it.

Holding the lock also makes it safe to remove what a killed run left behind: temporary files of
the atomic writes (``.<name>.<random>.tmp``, ``.<name>.<random>.old``), never published.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from autodata.errors import ProjectBusy, StorageError
from autodata.settings import Paths

_HOLDER_WAIT_S = 1.0  # a holder writes its pid right after taking the lock


@contextmanager
def project_lock(paths: Paths, command: str) -> Iterator[None]:
    """Hold the project's run lock while the block runs; raise :class:`ProjectBusy` if another
    process holds it, :class:`StorageError` if it cannot be created."""
    path = paths.lock_file
    lock = FileLock(path, blocking=False, on_acquired=_holder_writer(command))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise _busy(path) from None
    except OSError as exc:
        raise StorageError(
            f"cannot create the run lock {path}: {exc.strerror or exc}; fix the permissions of "
            f"{path.parent} (paths.interim) or free disk space, and rerun"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _holder_writer(command: str) -> Callable[[int], None]:
    record = f"{os.getpid()} {' '.join(command.split())}\n".encode()

    def write(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)

    return write


def holder(path: Path) -> tuple[int, str] | None:
    """(pid, command) the lock's holder wrote, or None if it has not (yet)."""
    try:
        pid, _, command = path.read_text(errors="replace").strip().partition(" ")
    except OSError:
        return None
    return (int(pid), command) if pid.isdigit() else None


def _busy(path: Path) -> ProjectBusy:
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while (found := holder(path)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    who = f"pid {found[0]} (`{found[1]}`)" if found else "another process"
    return ProjectBusy(
        f"another autodata run is using this project: {who} holds {path}; wait for it to "
        "finish or stop it, then rerun (one run per project at a time)"
    )


def remove_leftovers(paths: Paths) -> list[Path]:
    """Delete the temporary files a killed run left in the pipeline's output directories;
    return them. Only safe while holding :func:`project_lock`."""
    found = []
    for root in {paths.interim, paths.processed, paths.export, paths.metrics, paths.reports}:
        if root.is_dir():
            found += [p for p in root.rglob(".*") if p.suffix in (".tmp", ".old")]
    for path in sorted(found, reverse=True):  # children before their parents
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
