"""What every command that writes the project's data runs inside (``autodata run`` and the
``autodata stage`` commands DVC calls):

1. the project's run lock (:mod:`autodata.runlock`): a second run stops with one line naming
   the holder, and what a killed run left behind (temporary files) is removed;
2. SIGINT / SIGTERM handling (:mod:`autodata.stopping`): the run stops within seconds with one
   line saying what was kept and how to resume, exit code 130 / 143;
3. for the commands that run Prefect flows, the Prefect API (:mod:`autodata.prefect_api`): a
   temporary server that dies with the run, unless one is configured. It is spawned before
   anything imports Prefect and waited for only when the first flow is about to run
   (``StopOnSignal.run``), so its start-up overlaps the command's own; Prefect's console drops
   the tracebacks of errors reported here (:mod:`autodata.logfilter`);
4. a library's exception (Prefect, DVC, Great Expectations, polars, SQLite, a full disk) becomes
   the :class:`AutodataError` that names the component and the fix (:mod:`autodata.third_party`),
   so the CLI prints one line; an exception of our own code keeps its traceback, and so does a
   library's when ``AUTODATA_TRACEBACK`` is set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import typer

from autodata import logfilter, third_party
from autodata.cli_common import console
from autodata.errors import AutodataError
from autodata.prefect_api import prefect_api
from autodata.runlock import project_lock, remove_leftovers
from autodata.settings import Paths, Settings
from autodata.stopping import StopOnSignal, Stopping, exit_code, signal_name

TRACEBACK_ENV = "AUTODATA_TRACEBACK"


def command_line() -> str:
    """How the user started this process, e.g. ``autodata run --quiet``."""
    return " ".join(["autodata", *sys.argv[1:]])


def stop_line(paths: Paths, command: str, signum: int) -> str:
    """The one line a stopped run prints: what was kept, how to resume."""
    return (
        f"{signal_name(signum)}. Kept: every finished stage ({paths.interim}) and every "
        f"completed model call ({paths.cache}); nothing is half-written. Rerun `{command}` to "
        "resume: completed calls come from the cache."
    )


def library_error(exc: BaseException) -> AutodataError | None:
    """``exc`` as the one-line error of the library it comes from; ``None`` for ours, or for any
    when ``AUTODATA_TRACEBACK`` is set (module docstring, item 4)."""
    if not isinstance(exc, Exception) or os.environ.get(TRACEBACK_ENV):
        return None
    return third_party.as_error(exc)


def _say_stopped(line: str) -> None:
    console.print(f"stopped: {line}", markup=False, highlight=False, soft_wrap=True)


@contextmanager
def guarded(settings: Settings, *, flows: bool = False) -> Iterator[StopOnSignal]:
    """Run the block under the lock and the stop handling (module docstring). ``flows``: the
    block runs Prefect flows and needs the API; import them inside the block, so that their
    imports overlap the API server's start-up. An event loop must be run with the yielded
    ``StopOnSignal.run`` (a signal cancels it, and it waits for the API first), not
    ``asyncio.run``."""
    paths, command = settings.paths, command_line()
    stop = StopOnSignal(lambda signum: stop_line(paths, command, signum), _say_stopped)
    try:
        with ExitStack() as stack:
            stack.enter_context(project_lock(paths, command))
            remove_leftovers(paths)
            api = stack.enter_context(prefect_api(paths.prefect_log)) if flows else None
            if api is not None:  # from here on, Prefect is imported while its server starts
                logfilter.install()  # its console: no tracebacks of errors we report ourselves
            stack.enter_context(stop)
            stop.on_hard_stop(lambda: remove_leftovers(paths))
            if api is not None:
                stop.on_hard_stop(api.terminate)
                stop.before_run(api.wait_ready)
                stack.enter_context(api.reporting())
            yield stop
            if stop.signum is not None:  # it came as the work ended
                raise Stopping
    except BaseException as exc:
        if stop.signum is None:
            error = library_error(exc)
            if error is None:
                raise
            raise error from exc
        stop.say_once()
        raise typer.Exit(exit_code(stop.signum)) from None
