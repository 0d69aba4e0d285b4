"""A library's exception reaching the CLI is one line naming the component and the fix, with its
exit code (README, Reliability); an exception of our own code still shows its traceback."""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path

import polars as pl
import pytest
import yaml
from dvc.exceptions import DvcException, NotDvcRepoError
from great_expectations.exceptions import GreatExpectationsError
from prefect.exceptions import ObjectNotFound
from scmrepo.exceptions import SCMError
from typer.testing import CliRunner

import tasks.ingest
from autodata.cli import app
from autodata.logfilter import ExpectedFailure
from autodata.settings import Paths
from autodata.third_party import as_error

runner = CliRunner()


def raised_in(module: str, exc: BaseException) -> BaseException:
    """``exc`` as raised by code whose module is ``module`` (its innermost frame's globals)."""
    try:
        exec("raise exc", {"__name__": module, "exc": exc})
    except BaseException as raised:
        return raised
    raise AssertionError("unreachable")


def polars_error() -> pl.exceptions.PolarsError:
    try:
        pl.DataFrame({"a": [1]}).select("missing")
    except pl.exceptions.PolarsError as exc:
        return exc
    raise AssertionError("unreachable")


CASES = [  # (exception, exit code, what the one line starts with, a word of its fix)
    (
        ObjectNotFound(http_exc=Exception("404")),
        3,
        "error: Prefect failed (ObjectNotFound",
        "PREFECT_API_URL",
    ),
    (
        raised_in(
            "prefect.client.orchestration",
            RuntimeError("Failed to reach API at http://127.0.0.1:9/api/"),
        ),
        3,
        "error: Prefect failed (RuntimeError: Failed to reach API",
        "prefect server start",
    ),
    (
        NotDvcRepoError("you are not inside of a DVC repository"),
        5,
        "error: DVC failed (NotDvcRepoError: you are not inside",
        "dvc init",
    ),
    (
        DvcException("failed to pull data"),
        5,
        "error: DVC failed (DvcException: failed to pull",
        "dvc pull",
    ),
    (SCMError("not a git repository"), 5, "error: DVC failed (SCMError", "git init"),
    (
        GreatExpectationsError("Unable to load the suite"),
        5,
        "error: Great Expectations failed (GreatExpectationsError: Unable",
        "uv sync --frozen",
    ),
    (
        polars_error(),
        5,
        'error: polars failed (ColumnNotFoundError: unable to find column "missing"',
        "dvc repro --force",
    ),
    (
        sqlite3.OperationalError("database is locked"),
        2,
        "error: SQLite failed (OperationalError: database is locked)",
        "stop the other run",
    ),
    (
        OSError(errno.ENOSPC, "No space left on device", "data/processed/sources.parquet"),
        2,
        "error: no space left on the disk: data/processed/sources.parquet (OSError)",
        "free space",
    ),
    (
        OSError(errno.EROFS, "Read-only file system", "data/interim"),
        2,
        "error: read-only file system: data/interim (OSError)",
        "writable",
    ),
]


@pytest.fixture
def params(tmp_path: Path) -> Path:
    paths = {k: str(tmp_path / str(v)) for k, v in Paths().model_dump().items()}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"paths": paths}))
    return path


def ingest_raising(monkeypatch: pytest.MonkeyPatch, params: Path, exc: BaseException) -> object:
    def stage(*args: object, **kwargs: object) -> tuple[int, int]:
        raise exc

    monkeypatch.setattr(tasks.ingest, "ingest_to_files", stage)
    return runner.invoke(app, ["--params", str(params), "ingest"])


@pytest.mark.parametrize(
    ("exc", "code", "line", "fix"), CASES, ids=[type(c[0]).__name__ for c in CASES]
)
def test_a_library_exception_in_a_stage_is_one_line_naming_it_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
    params: Path,
    exc: BaseException,
    code: int,
    line: str,
    fix: str,
) -> None:
    result = ingest_raising(monkeypatch, params, exc)
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    lines = result.output.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith(line), result.output  # type: ignore[attr-defined]
    assert fix in lines[0] and "Traceback" not in result.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug of ours"),
        KeyError("column"),
        OSError(errno.ENOENT, "No such file or directory", "x"),  # not a full or read-only disk
        raised_in("polars.dataframe.frame", TypeError("bad argument")),  # our misuse of polars
        raised_in("tasks.ingest", RuntimeError("ours")),
    ],
    ids=["ValueError", "KeyError", "ENOENT", "TypeError-in-polars", "RuntimeError-ours"],
)
def test_an_exception_of_our_own_code_still_shows_its_traceback(
    monkeypatch: pytest.MonkeyPatch, params: Path, exc: BaseException
) -> None:
    assert as_error(exc) is None
    result = ingest_raising(monkeypatch, params, exc)
    assert result.exception is exc  # type: ignore[attr-defined]  # CliRunner keeps it: a traceback


def test_a_connection_error_below_prefects_code_is_prefects() -> None:
    import httpx

    try:
        exec(
            "def call():\n    raise httpx.ConnectError('[Errno 111] Connection refused')\ncall()",
            {"__name__": "prefect.client.orchestration", "httpx": httpx},
        )
    except httpx.ConnectError as exc:
        error = as_error(exc)
    assert error is not None and str(error).startswith("Prefect failed (ConnectError: [Errno 111]")


def test_a_multi_line_library_message_is_cut_to_its_first_line() -> None:
    error = as_error(GreatExpectationsError("first line\n\nsecond line " + "x" * 500))
    assert error is not None and "\n" not in str(error) and "second" not in str(error)


def record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("prefect.task_runs", logging.ERROR, "x", 1, message, None, info)


def test_prefects_console_drops_the_tracebacks_of_a_library_error_the_cli_prints_as_one_line():
    keep = ExpectedFailure()
    exc = polars_error()
    assert not keep.filter(record("Task run failed with exception: ColumnNotFoundError(...)", exc))
    assert not keep.filter(record("Finished in state Failed('... ColumnNotFoundError: unable')"))
    bug = ValueError("a bug of ours")
    assert keep.filter(record("Task run failed with exception: ValueError('a bug of ours')", bug))
    assert keep.filter(record("Finished in state Failed('... ValueError: a bug of ours')"))
