"""A time limit on reading one source file (``ingest.max_parse_s``), enforced in the reading thread.

A file whose reading takes longer — a pathological page, a PDF that sends its parser round in
circles — becomes a skipped row and the ingest goes on. No thread or process is left behind: the
reading is not moved anywhere (it runs in the caller's thread, a Prefect task's or the CLI's), and
one :class:`Watchdog` thread per ingest, joined when the ingest ends, raises :class:`TimeUp` in the
reading thread when the file's time is up (CPython's ``PyThreadState_SetAsyncExc``, what Prefect
uses for its own timeouts). ``TimeUp`` is a ``BaseException``, so a library's ``except Exception``
does not swallow it, and it is raised again every second until the reading stops, should a
library catch everything. It lands between two Python instructions: a single call into C (one
regular expression, one decompression) ends before it does — the parsers' own loops, all Python
(bs4 and html.parser, pypdf, pylatexenc, ftfy, ours), are interrupted.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

__all__ = ["TimeUp", "Watchdog"]

T = TypeVar("T")
_AGAIN_S = 1.0


class TimeUp(BaseException):
    """Raised in the reading thread when its file's time is up (module doc)."""


class Watchdog:
    """Context manager: while active, :meth:`run` calls a function under the time limit.

    ``limit_s`` None: no limit, no thread.
    """

    def __init__(self, limit_s: float | None) -> None:
        self.limit_s = limit_s
        self._cond = threading.Condition()
        self._armed: tuple[int, float] | None = None  # (thread id, deadline)
        self._fired = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Watchdog:
        if self.limit_s is not None:
            self._thread = threading.Thread(target=self._watch, name="ingest-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def run(self, read: Callable[[], T]) -> T | None:
        """``read()``, or None when it ran out of time: it was interrupted, or it ended after its
        deadline (in a call into C, or with an exception a library made of :class:`TimeUp`)."""
        if self._thread is None:
            return read()
        result: T | None = None
        error: Exception | None = None
        self._arm()
        try:
            result = read()
        except TimeUp:
            pass
        except Exception as exc:  # re-raised below, unless the time was up
            error = exc
        finally:
            while True:  # TimeUp may land here too, even on entering _disarm: until disarmed
                try:
                    fired = self._disarm()
                    break
                except TimeUp:
                    continue  # delivered: nothing is pending any more
        if fired:
            return None
        if error is not None:
            raise error
        return result

    def _arm(self) -> None:
        assert self.limit_s is not None
        with self._cond:
            self._armed = (threading.get_ident(), time.monotonic() + self.limit_s)
            self._fired = False
            self._cond.notify()

    def _disarm(self) -> bool:
        """Stop watching this thread; True when its time had run out. A TimeUp raised but not
        yet delivered is delivered here, at the first call below, and raised from here; the
        caller calls again (no further one is raised once disarmed). Cancelling it instead
        (``PyThreadState_SetAsyncExc`` with NULL) leaves CPython 3.11's eval breaker set for
        good: every later function entry slows, and under a tracer (a debugger, coverage) spins."""
        with self._cond:
            self._armed = None
            fired = self._fired
        if fired:
            _deliver_pending()
        return fired

    def _watch(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._armed is None:
                    self._cond.wait()
                    continue
                thread, deadline = self._armed
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._fired = True
                _raise_in(thread, TimeUp)
                self._cond.wait(_AGAIN_S)  # caught by a library's bare except: again


def _raise_in(thread: int, exc: type[BaseException]) -> None:
    """Raise ``exc`` in ``thread`` at its next function entry or backward jump."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(exc))


def _deliver_pending() -> None:
    """A function entry: where an exception raised in this thread by another is delivered."""
