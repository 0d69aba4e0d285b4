"""Keep Prefect's console from repeating an expected failure as a traceback.

An :class:`AutodataError` ends the CLI with one line that names the culprit and the fix. Prefect
also logs it, with its traceback, from every task and flow it passed through, which buries that
line. :func:`install` drops exactly those records from Prefect's console handler: records about
any other exception (a bug) keep their traceback, and the API handler still sends everything
to the Prefect server, so the UI shows the failed runs and why. A library's exception that the
CLI prints as one line too (:mod:`autodata.third_party`: Prefect, DVC, Great Expectations,
polars, SQLite, a full disk) is dropped the same way, with the later records that name it. It
also drops the INFO chatter of libraries that set their own loggers' levels (Great
Expectations), which no logger setting stops.
"""

from __future__ import annotations

import logging
import re

from autodata import errors, third_party

_EXIT_NOISE = "Still processing items"  # Prefect's event worker draining as the CLI exits
_CHATTY = ("great_expectations",)  # below WARNING, never shown on the console


def _names(cls: type[BaseException]) -> set[str]:
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))


class ExpectedFailure(logging.Filter):
    """Drops records whose exception, or whose message's ``exception: Name``, is ours, and
    library chatter (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._known: set[str] = set()
        self._pattern = re.compile("(?!)")
        self._libraries: set[str] = set()  # names of the library exceptions dropped so far

    def _mention(self, message: str) -> bool:
        """Whether ``message`` names one of our errors. Their classes are read when a record
        comes, not at install: the filter is installed before the flows (and the error classes
        their modules define) are imported, while Prefect's server starts."""
        names = _names(errors.AutodataError)
        if names != self._known:
            self._known = names
            self._pattern = re.compile(rf"(exception: |\b)({'|'.join(sorted(names))})\b[:(]")
        return self._pattern.search(message) is not None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and record.name.split(".")[0] in _CHATTY:
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, errors.AutodataError):
            return False
        if exc is not None and third_party.as_error(exc) is not None:
            self._libraries.add(type(exc).__name__)
            return False
        message = record.getMessage()
        if record.levelno >= logging.ERROR and (
            self._mention(message) or self._names_library_error(message)
        ):
            return False
        return not (record.name == "EventsWorker" and _EXIT_NOISE in message)

    def _names_library_error(self, message: str) -> bool:
        return any(f"{name}:" in message or f"{name}(" in message for name in self._libraries)


def install() -> None:
    """Add :class:`ExpectedFailure` to Prefect's console handler(s), once."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    # Prefect's API log worker reports logs its server refused by writing to stderr itself, with
    # no final newline, while logging.raiseExceptions is on (the stdlib's default, meant for
    # development): under a full disk its text ran into the CLI's one error line.
    logging.raiseExceptions = False
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, ExpectedFailure) for f in handler.filters
        ):
            handler.addFilter(ExpectedFailure())
