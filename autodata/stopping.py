"""Stopping a run on SIGINT (Ctrl-C) or SIGTERM: within seconds, quietly, with one line.

Everything a run writes is atomic (``autodata.io``) and every completed model call is committed
to the per-call cache before it is used, so a stopped run loses only the calls in flight; a
rerun resumes. What this module adds is the *ending*. While :class:`StopOnSignal` is active the
main thread owns both signals: an event loop it runs (:meth:`StopOnSignal.run`) runs in a worker
thread, where neither Prefect (which would install its own SIGTERM handler around every flow)
nor asyncio (SIGINT) takes them over. The first signal cancels that loop's main task (Prefect
records its runs as crashed; servers are stopped by their owners on the way out), or, outside a
loop, raises :class:`Stopping` in the main thread. Prefect's console stays quiet from then on.
Should the unwinding take longer than ``grace_s``, or a second signal arrive, the process ends
itself (``os._exit``) after its clean-up callbacks.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from types import FrameType, TracebackType
from typing import Any, TypeVar, cast

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 5.0
T = TypeVar("T")


class Stopping(KeyboardInterrupt):
    """Raised in the main thread by the first signal, to unwind the run.

    A ``KeyboardInterrupt``, so asyncio propagates it out of the event loop and cancels every
    task on the way, and no ``except Exception`` in between can swallow it.
    """


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def signal_name(signum: int) -> str:
    """``SIGINT (Ctrl-C)`` or ``SIGTERM``."""
    name = signal.Signals(signum).name
    return f"{name} (Ctrl-C)" if signum == signal.SIGINT else name


class StopOnSignal:
    """Context manager: while active, SIGINT and SIGTERM stop the run (module docstring).

    ``line(signum)`` is the one line to print; the caller prints it on the normal way out
    (:meth:`say_once`, when :attr:`signum` is set), this class only when it has to end the
    process itself, after running the ``on_hard_stop`` clean-ups (latest first).
    """

    def __init__(self, line: Callable[[int], str], say: Callable[[str], None],
                 grace_s: float = GRACE_S) -> None:  # fmt: skip
        self.signum: int | None = None
        self._line, self._say, self._grace_s = line, say, grace_s
        self._cleanups: list[Callable[[], object]] = []
        self._prerequisites: list[Callable[[], object]] = []
        self._previous: dict[int, Any] = {}
        self._cancel: Callable[[], None] | None = None
        self._said = threading.Event()
        self._lock = threading.Lock()
        self._filter = _QuietAfterStop(self)

    def on_hard_stop(self, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` before the process ends itself (not on the normal way out)."""
        self._cleanups.append(cleanup)

    def before_run(self, prerequisite: Callable[[], object]) -> None:
        """Have the first :meth:`run` call ``prerequisite`` (in this thread, where a signal still
        stops it) before its loop starts: what the loop needs but the code before it does not,
        such as the Prefect API whose server started beside the command's own start-up."""
        self._prerequisites.append(prerequisite)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """``asyncio.run(main)`` in a worker thread (in this thread's context, so Prefect's
        settings carry over), after the prerequisites (:meth:`before_run`); the first signal
        cancels ``main``. Returns its result or raises what it raised."""
        try:
            while self._prerequisites:
                self._prerequisites.pop(0)()
        except BaseException:
            main.close()  # never awaited: no "coroutine was never awaited" warning
            raise
        requested, running = threading.Event(), list[tuple[asyncio.AbstractEventLoop, Any]]()

        def cancel() -> None:
            requested.set()
            for loop, task in running:
                loop.call_soon_threadsafe(task.cancel)

        async def watched() -> T:
            running.append((asyncio.get_running_loop(), asyncio.current_task()))
            if requested.is_set():  # a signal came before the loop ran
                raise asyncio.CancelledError
            return await main

        outcome: dict[str, Any] = {}
        context = contextvars.copy_context()

        def work() -> None:
            try:
                outcome["result"] = context.run(asyncio.run, watched())
            except BaseException as exc:  # handed to the main thread below
                outcome["error"] = exc

        self._cancel = cancel
        worker = threading.Thread(target=work, name="autodata-run", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)  # short waits: the main thread stays free to take signals
        finally:
            self._cancel = None
        if "error" in outcome:
            raise outcome["error"]
        return cast(T, outcome["result"])

    def say_once(self) -> None:
        """Print the stop line, unless it was printed already."""
        with self._lock:
            if self.signum is None or self._said.is_set():
                return
            self._said.set()
        self._say(self._line(self.signum))

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        for handler in _console_handlers():
            handler.addFilter(self._filter)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if self.signum is not None:
            return  # stopping: a second signal still ends the process; Prefect stays quiet
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        for console in _console_handlers():
            console.removeFilter(self._filter)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            first, self.signum = self.signum is None, self.signum or signum
        if not first:
            self._hard_stop()  # a second signal: the user does not want to wait
        threading.Thread(target=self._deadline, name="stop-deadline", daemon=True).start()
        if self._cancel is None:
            raise Stopping
        self._cancel()

    def _deadline(self) -> None:
        if self._said.wait(self._grace_s):  # the line is out: bound what is left (atexit hooks)
            time.sleep(self._grace_s)
        self._hard_stop()

    def _hard_stop(self) -> None:
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:  # the process ends next; say why a clean-up failed
                self._say(f"while stopping: {type(exc).__name__}: {exc}")
        self.say_once()
        assert self.signum is not None
        os._exit(exit_code(self.signum))


class _QuietAfterStop(logging.Filter):
    """On Prefect's console: drops every record once a stop began (its "Crash detected!" lines
    say what the one stop line says)."""

    def __init__(self, stop: StopOnSignal) -> None:
        super().__init__()
        self._stop = stop

    def filter(self, record: logging.LogRecord) -> bool:
        return self._stop.signum is None


def _console_handlers() -> list[logging.Handler]:
    """Prefect's console handler(s) (it sets up logging first if it has not yet)."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    return [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
