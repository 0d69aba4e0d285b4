"""OpenAIChatClient against the scripted loopback server: retries, JSON, cache, limits, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from autodata.errors import BackendError, CallError
from autodata.llm.cache import CallCache
from autodata.llm.client import (
    GUIDANCE_HINTS,
    RESAMPLE_SEED_STRIDE,
    ChatRequest,
    OpenAIChatClient,
    WireOptions,
)
from autodata.testing.scripted_server import Reply, ScriptedServer

SECRET = "sk-test-SECRET"
NOW = {"Retry-After": "0"}


class Criterion(BaseModel):
    criterion: str
    weight: Literal[1, 2, 3, 4, 5, 6, 7]


class Item(BaseModel):
    question: str
    rubric: list[Criterion] = Field(min_length=1)


class Verdict(BaseModel):
    ok: bool


GOOD_ITEM = {"question": "Why?", "rubric": [{"criterion": "says why", "weight": 7}]}


def _echo(body: dict[str, Any]) -> str:
    """Replies with the last message, so a cached answer can be told from a fresh one."""
    return "echo:" + body["messages"][-1]["content"]


def _ask(user: str = "hello", **kwargs: Any) -> ChatRequest:
    return ChatRequest.of("system", user, **kwargs)


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., OpenAIChatClient]]:
    """Factory for clients with fast retries; every client is closed after the test."""
    made: list[OpenAIChatClient] = []

    def make(target: ScriptedServer | str, **kwargs: Any) -> OpenAIChatClient:
        url = target.base_url if isinstance(target, ScriptedServer) else target
        model = kwargs.pop("model", "scripted")
        options: dict[str, Any] = {"backoff_s": 0.001, "max_retries": 2, "role": "judge"}
        made.append(OpenAIChatClient(url, model, **(options | kwargs)))
        return made[-1]

    yield make
    for c in made:
        await c.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        Reply(status=500),
        Reply(status=502),
        Reply(status=503, headers=NOW),
        Reply(status=429, headers=NOW),
        Reply(fault="reset"),
        Reply(fault="truncate"),
        Reply(fault="garbage"),
    ],
    ids=["500", "502", "503", "429", "reset", "truncate", "garbage"],
)
async def test_transient_failures_are_retried_until_a_reply_comes(scripted, client, failure):
    srv = scripted(lambda body: "fine")
    srv.queue(failure, failure)
    c = client(srv)
    result = await c.chat(_ask())
    assert result.texts == ["fine"]
    assert srv.count() == 3
    assert (c.stats.retries, c.stats.calls, c.stats.failures) == (2, 3, 0)


async def test_a_timeout_is_retried(scripted, client):
    srv = scripted(lambda body: "fine")
    srv.queue(Reply(text="late", delay_s=3.0))
    c = client(srv, timeout_s=0.25)
    result = await c.chat(_ask())
    assert result.texts == ["fine"]
    assert srv.count() == 2
    assert c.stats.retries == 1


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Reply(status=500), "http_500"),
        (Reply(status=503, headers=NOW), "http_503"),
        (Reply(fault="reset"), "connection"),
        (Reply(fault="truncate"), "connection"),
        (Reply(fault="garbage"), "bad_reply"),
        (Reply(delay_s=3.0), "timeout"),
    ],
    ids=["500", "503", "reset", "truncate", "garbage", "timeout"],  # 429: test_client_replies
)
async def test_gives_up_after_max_retries_with_an_infra_call_error(scripted, client, failure, kind):
    srv = scripted(lambda body: failure)
    c = client(srv, max_retries=2, timeout_s=0.25 if kind == "timeout" else 10.0)
    with pytest.raises(CallError) as err:
        await c.chat(_ask())
    assert err.value.kind == kind
    assert err.value.is_infra
    assert "judge" in str(err.value) and "3 tries" in str(err.value)
    assert srv.count() == 3
    assert (c.stats.retries, c.stats.failures) == (2, 1)


async def test_an_unreachable_server_is_a_connection_error(client):
    c = client(f"http://127.0.0.1:{_free_port()}/v1", max_retries=1)
    with pytest.raises(CallError) as err:
        await c.chat(_ask())
    assert err.value.kind == "connection"
    assert (c.stats.calls, c.stats.retries) == (2, 1)


async def test_retry_after_zero_retries_at_once_instead_of_backing_off(scripted, client):
    srv = scripted(lambda body: "fine")
    srv.queue(Reply(status=503, headers=NOW), Reply(status=429, headers=NOW))
    c = client(srv, backoff_s=30.0)  # backoff would take a minute
    result = await asyncio.wait_for(c.chat(_ask()), timeout=2)
    assert result.texts == ["fine"]
    assert c.stats.retries == 2


async def test_a_positive_retry_after_is_waited_instead_of_the_backoff(scripted, client):
    srv = scripted(lambda body: "fine")
    srv.queue(Reply(status=503, headers={"Retry-After": "0.3"}))
    c = client(srv, backoff_s=30.0)
    result = await asyncio.wait_for(c.chat(_ask()), timeout=2)
    assert result.texts == ["fine"]
    assert srv.requests[1].time - srv.requests[0].time >= 0.29


async def test_without_retry_after_the_backoff_grows_per_attempt(scripted, client):
    srv = scripted(lambda body: "fine")
    srv.queue(Reply(status=500), Reply(status=500))
    c = client(srv, backoff_s=0.1)
    await c.chat(_ask())
    t = [r.time for r in srv.requests]
    assert t[1] - t[0] >= 0.1  # backoff · 2**0 · [1, 2)
    assert t[2] - t[1] >= 0.2  # backoff · 2**1 · [1, 2)


@pytest.mark.timeout(10)  # "nan" used to reach asyncio.sleep, which then never returns
@pytest.mark.parametrize("header", ["nan", "-5", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"])
async def test_an_unusable_retry_after_falls_back_to_the_backoff(scripted, client, header):
    srv = scripted(lambda body: "fine")
    srv.queue(Reply(status=503, headers={"Retry-After": header}))
    c = client(srv, backoff_s=0.001)
    result = await asyncio.wait_for(c.chat(_ask()), timeout=5)
    assert result.texts == ["fine"]
    assert srv.count() == 2


async def test_http_400_is_not_retried_and_stops_the_run(scripted, client):
    srv = scripted(lambda body: Reply(status=400, text="max_tokens is too large"))
    c = client(srv)
    with pytest.raises(BackendError) as err:
        await c.chat(_ask())
    assert "max_tokens is too large" in str(err.value) and "judge" in str(err.value)
    assert srv.count() == 1
    assert c.stats.retries == 0


async def test_http_401_is_a_backend_error_naming_the_key_variable(scripted, client):
    srv = scripted(lambda body: "fine", api_key="the-right-key")
    c = client(srv, api_key="wrong-key")
    with pytest.raises(BackendError) as err:
        await c.chat(_ask())
    assert "AUTODATA_MODELS__JUDGE__API_KEY" in str(err.value)
    assert "401" in str(err.value)
    assert srv.count() == 1


async def test_unknown_model_is_a_backend_error_naming_the_setting(scripted, client):
    srv = scripted(lambda body: "fine")
    c = client(srv, model="no-such-model")
    with pytest.raises(BackendError) as err:
        await c.chat(_ask())
    assert "models.judge.model" in str(err.value)
    assert "no-such-model" in str(err.value)
    assert srv.count() == 1


async def test_a_base_url_without_v1_is_named_as_the_cause_of_a_404(scripted, client):
    srv = scripted(lambda body: "fine")
    c = client(srv.base_url.removesuffix("/v1"))
    with pytest.raises(BackendError) as err:
        await c.chat(_ask())
    assert "models.judge.base_url" in str(err.value)
    assert f"{srv.base_url}" in str(err.value)  # the fixed URL, ending in /v1
    assert "has no model" not in str(err.value)


# -- JSON output -----------------------------------------------------------------------------


async def test_json_output_is_parsed_and_the_schema_is_sent(scripted, client):
    srv = scripted(lambda body: GOOD_ITEM)
    result = await client(srv).chat(_ask(response_model=Item))
    assert result.parsed == [Item.model_validate(GOOD_ITEM)]
    sent = srv.requests[0].body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"] == {
        "name": "Item",
        "schema": Item.model_json_schema(),
        "strict": True,
    }


async def test_guidance_hints_only_when_asked_for(scripted, client):
    srv = scripted(lambda body: GOOD_ITEM)
    await client(srv, options=WireOptions(guidance_hints=True)).chat(_ask(response_model=Item))
    await client(srv, options=WireOptions(guidance_hints=False)).chat(_ask(response_model=Item))
    hinted, plain = (r.body["response_format"]["json_schema"]["schema"] for r in srv.requests)
    assert hinted["x-guidance"] == GUIDANCE_HINTS
    assert "x-guidance" not in plain


async def test_plain_text_calls_send_no_response_format(scripted, client):
    srv = scripted(lambda body: "free text")
    result = await client(srv, options=WireOptions(guidance_hints=True)).chat(_ask())
    assert "response_format" not in srv.requests[0].body
    assert (result.texts, result.parsed) == (["free text"], [])


@pytest.mark.parametrize(
    "bad",
    [
        json.dumps({"question": "Why?", "rubric": [{"criterion": "c", "weight": 9}]}),
        json.dumps({"question": "Why?", "rubric": [{"criterion": "c", "weight": "+8"}]}),
        json.dumps({"question": "Why?", "rubric": []}),
        "Sure! Here is the item: question=Why?",
    ],
    ids=["weight-9", "weight-string", "empty-rubric", "not-json"],  # empty: a bad reply, retried
)
async def test_a_schema_violation_is_re_asked_with_a_new_seed(scripted, client, bad):
    srv = scripted(lambda body: GOOD_ITEM)
    srv.queue(Reply(text=bad))
    c = client(srv)
    result = await c.chat(_ask(response_model=Item, seed=7))
    assert result.parsed == [Item.model_validate(GOOD_ITEM)]
    assert [r.body["seed"] for r in srv.requests] == [7, 7 + RESAMPLE_SEED_STRIDE]
    assert (c.stats.resamples, c.stats.retries, c.stats.failures) == (1, 0, 0)


async def test_invalid_output_after_max_resamples_is_not_an_infra_error(scripted, client):
    srv = scripted(lambda body: {"question": "Why?", "rubric": []})
    c = client(srv, max_resamples=2)
    with pytest.raises(CallError) as err:
        await c.chat(_ask(response_model=Item, seed=7))
    assert err.value.kind == "invalid_output"
    assert not err.value.is_infra
    assert "rubric" in str(err.value)
    assert [r.body["seed"] for r in srv.requests] == [
        7 + k * RESAMPLE_SEED_STRIDE for k in range(3)
    ]
    assert (c.stats.resamples, c.stats.failures) == (3, 1)


# -- n, logprobs, tokens ---------------------------------------------------------------------


async def test_n_choices_come_back_in_order(scripted, client):
    srv = scripted(lambda body: Reply(text=["a", "b", "c"]))
    result = await client(srv).chat(_ask(n=3))
    assert result.texts == ["a", "b", "c"]
    assert srv.requests[0].body["n"] == 3


async def test_n_choices_are_each_parsed(scripted, client):
    srv = scripted(lambda body: Reply(text=['{"ok": true}', '{"ok": false}']))
    result = await client(srv).chat(_ask(n=2, response_model=Verdict))
    assert result.parsed == [Verdict(ok=True), Verdict(ok=False)]


async def test_top_logprobs_are_requested_and_parsed(scripted, client):
    tops = [{"yes": -0.1, "no": -2.5}]
    srv = scripted(lambda body: Reply(text="yes", logprobs=tops))
    result = await client(srv).chat(_ask(top_logprobs=2))
    body = srv.requests[0].body
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert result.top_logprobs == [{"yes": -0.1, "no": -2.5}]


async def test_logprobs_are_not_requested_by_default(scripted, client):
    srv = scripted(lambda body: "yes")
    result = await client(srv).chat(_ask())
    assert "logprobs" not in srv.requests[0].body
    assert result.top_logprobs == [{}]


async def test_tokens_come_from_usage_and_cache_hits_do_not_add_them(scripted, client, tmp_path):
    srv = scripted(lambda body: Reply(text="x", prompt_tokens=11, completion_tokens=7))
    c = client(srv, cache=CallCache(tmp_path))
    first = await c.chat(_ask())
    second = await c.chat(_ask())
    assert (first.tokens_in, first.tokens_out) == (11, 7)
    assert (second.tokens_in, second.tokens_out, second.cached) == (11, 7, True)
    assert (c.stats.tokens_in, c.stats.tokens_out) == (11, 7)


async def test_tokens_of_a_rejected_reply_are_counted(scripted, client):
    srv = scripted(lambda body: Reply(text='{"ok": true}', prompt_tokens=11, completion_tokens=7))
    srv.queue(Reply(text="nope", prompt_tokens=11, completion_tokens=3))
    c = client(srv)
    await c.chat(_ask(response_model=Verdict))
    assert (c.stats.tokens_in, c.stats.tokens_out) == (22, 10)


# -- cache -----------------------------------------------------------------------------------


async def test_an_identical_call_is_served_from_the_cache(scripted, client, tmp_path):
    srv = scripted(_echo)
    c = client(srv, cache=CallCache(tmp_path))
    first = await c.chat(_ask())
    second = await c.chat(_ask())
    assert srv.count() == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.texts == first.texts == ["echo:hello"]
    assert c.stats.cache_hits == 1


async def test_a_cached_json_reply_is_parsed_again(scripted, client, tmp_path):
    srv = scripted(lambda body: GOOD_ITEM)
    c = client(srv, cache=CallCache(tmp_path))
    await c.chat(_ask(response_model=Item))
    again = await c.chat(_ask(response_model=Item))
    assert again.cached and again.parsed == [Item.model_validate(GOOD_ITEM)]
    assert srv.count() == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"temperature": 0.1},
        {"seed": 1},
        {"top_p": 0.9},
        {"max_tokens": 7},
        {"n": 2},
        {"top_logprobs": 3},
        {"response_model": Verdict},
        {"user": "a different question"},
    ],
    ids=lambda d: next(iter(d)),
)
async def test_a_changed_request_misses_the_cache(scripted, client, tmp_path, changed):
    srv = scripted(lambda body: '{"ok": true}')
    c = client(srv, cache=CallCache(tmp_path))
    await c.chat(_ask())
    result = await c.chat(_ask(**changed))
    assert srv.count() == 2
    assert not result.cached


async def test_a_different_model_misses_the_cache(scripted, client, tmp_path):
    cache = CallCache(tmp_path)
    first, second = scripted(_echo), scripted(_echo, model="other")
    await client(first, cache=cache).chat(_ask())
    result = await client(second, model="other", cache=cache).chat(_ask())
    assert (first.count(), second.count()) == (1, 1)
    assert not result.cached


async def test_server_and_transport_settings_do_not_change_the_key(scripted, client, tmp_path):
    """base_url, api_key, timeout, concurrency and retries are left out of the key on purpose."""
    first, second = scripted(_echo), scripted(_echo)
    await client(first, cache=CallCache(tmp_path)).chat(_ask())
    other = client(
        second,
        cache=CallCache(tmp_path),
        api_key="another-key",
        timeout_s=3.0,
        max_concurrency=1,
        max_retries=0,
        backoff_s=2.0,
    )
    result = await other.chat(_ask())
    assert result.cached and result.texts == ["echo:hello"]
    assert second.count() == 0


async def test_failed_calls_are_not_cached(scripted, client, tmp_path):
    srv = scripted(_echo)
    srv.queue(Reply(status=500))
    c = client(srv, cache=CallCache(tmp_path), max_retries=0)
    with pytest.raises(CallError):
        await c.chat(_ask())
    result = await c.chat(_ask())
    assert not result.cached and result.texts == ["echo:hello"]


# -- concurrency -----------------------------------------------------------------------------


class _InFlight:
    """A responder that holds each request for ``hold_s`` and records the peak overlap."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s, self.now, self.peak = hold_s, 0, 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.hold_s)
        with self._lock:
            self.now -= 1
        return "done"


@pytest.mark.parametrize("limit", [2, 4])
async def test_max_concurrency_bounds_requests_in_flight(scripted, client, limit):
    responder = _InFlight(hold_s=0.2)
    srv = scripted(responder)
    c = client(srv, max_concurrency=limit)
    results = await asyncio.gather(*(c.chat(_ask(f"q{i}")) for i in range(8)))
    assert [r.texts for r in results] == [["done"]] * 8
    assert srv.count() == 8
    assert responder.peak == limit  # never more, and the limit is actually used


# -- secrets ---------------------------------------------------------------------------------


async def test_the_api_key_goes_only_into_the_authorization_header(
    scripted, client, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    srv = scripted(_echo, api_key=SECRET)
    srv.queue(Reply(status=500), Reply(status=500), Reply(status=500))
    cache = CallCache(tmp_path / "cache")
    c = client(srv, api_key=SECRET, cache=cache)
    with pytest.raises(CallError) as call_error:
        await c.chat(_ask("first"))
    await c.chat(_ask("second"))
    with pytest.raises(BackendError) as backend_error:
        await client(srv, api_key="sk-wrong").chat(_ask())
    cache.close()

    assert {r.headers["authorization"] for r in srv.requests[:4]} == {f"Bearer {SECRET}"}
    assert SECRET not in repr(c)
    assert SECRET not in str(call_error.value)
    assert SECRET not in str(backend_error.value)
    assert "sk-wrong" not in str(backend_error.value)
    assert SECRET not in caplog.text
    stored = b"".join(p.read_bytes() for p in Path(tmp_path / "cache").iterdir())
    assert b"echo:second" in stored
    assert SECRET.encode() not in stored


async def test_without_a_key_no_authorization_header_is_sent(scripted, client):
    srv = scripted(_echo)
    await client(srv).chat(_ask())
    assert "authorization" not in srv.requests[0].headers
