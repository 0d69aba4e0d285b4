"""Fatal cases found before the first call (``autodata/llm/preflight.py``), and the console
filter that keeps Prefect from repeating them as tracebacks (``autodata/logfilter.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from autodata.errors import BackendError, SourceError
from autodata.llm import preflight
from autodata.logfilter import ExpectedFailure
from autodata.testing.scripted_server import ScriptedServer

Scripted = Callable[..., ScriptedServer]


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "RETRY_S", 0.0)


async def probe(base_url: str, model: str = "scripted", key: str | None = None) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        await preflight.probe(http, "judge", base_url, model, key)


async def test_a_served_model_with_the_right_key_passes(scripted: Scripted) -> None:
    server = scripted(api_key="sk-right")
    await probe(server.base_url, key="sk-right")
    assert [r.path for r in server.requests] == ["/v1/models"]


async def test_an_unreachable_url_names_the_role_url_and_fix(scripted: Scripted, no_wait: None) -> None:  # fmt: skip
    server = scripted()
    url = server.base_url
    server.close()
    with pytest.raises(BackendError) as err:
        await probe(url)
    assert str(err.value).startswith(f"judge: cannot reach {url} (ConnectError after 3 tries)")
    assert "AUTODATA_MODELS__JUDGE__BASE_URL" in str(err.value)


async def test_a_refused_key_is_fatal_and_the_key_is_not_shown(scripted: Scripted) -> None:
    server = scripted(api_key="sk-right")
    with pytest.raises(BackendError, match=r"refused the API key \(HTTP 401\)") as err:
        await probe(server.base_url, key="sk-wrong-123")
    assert "sk-wrong-123" not in str(err.value) and "AUTODATA_MODELS__JUDGE__API_KEY" in str(err.value)  # fmt: skip


async def test_a_model_the_server_lacks_lists_what_it_serves(scripted: Scripted) -> None:
    server = scripted()
    with pytest.raises(BackendError, match="has no model 'gpt-9' \\(it serves: scripted\\)"):
        await probe(server.base_url, model="gpt-9")


def record(exc: BaseException | None = None, message: str = "boom", name: str = "prefect.flow_runs") -> logging.LogRecord:  # fmt: skip
    info = (type(exc), exc, None) if exc else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, info)


def test_the_console_filter_drops_our_errors_and_keeps_bugs() -> None:
    keep = ExpectedFailure().filter
    assert not keep(record(SourceError("no sources")))
    assert not keep(record(message="Finished in state Failed('Flow run encountered an exception: SourceError: x')"))  # fmt: skip
    assert not keep(record(message="Task run failed with exception: BackendError('x') - Retries are exhausted"))  # fmt: skip
    assert not keep(record(message="Still processing items: 3 items remaining...", name="EventsWorker"))  # fmt: skip
    assert keep(record(KeyError("a bug")))
    assert keep(record(message="Finished in state Failed('Flow run encountered an exception: KeyError: x')"))  # fmt: skip


def test_the_console_filter_drops_great_expectations_info_but_not_its_warnings() -> None:
    keep = ExpectedFailure().filter
    chatter = record(message="Created temporary directory '/tmp/x' for ephemeral docs site",
                     name="great_expectations.data_context.types.base")  # fmt: skip
    chatter.levelno = logging.INFO
    assert not keep(chatter)
    warning = record(message="a real problem", name="great_expectations.core")
    warning.levelno = logging.WARNING
    assert keep(warning)
    ours = record(message="round 1 done", name="autodata.flow")
    ours.levelno = logging.INFO
    assert keep(ours)
