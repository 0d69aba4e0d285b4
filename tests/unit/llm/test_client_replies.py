"""The client against replies the way real servers send them: reasoning, fences, list content,
truncation, malformed 200s, rate limits, rejected requests, reasoning-model parameters."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import Any

import pytest
from pydantic import BaseModel

from autodata.errors import BackendError, CallError
from autodata.llm.cache import CallCache, cache_key
from autodata.llm.client import ChatRequest, OpenAIChatClient, WireOptions
from autodata.llm.status import retry_after
from autodata.llm.wire import build_body
from autodata.testing.scripted_server import Reply, ScriptedServer


class Out(BaseModel):
    ok: bool


GOOD = '{"ok": true}'


def _ask(**kwargs: Any) -> ChatRequest:
    return ChatRequest.of("system", "user", **kwargs)


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., OpenAIChatClient]]:
    made: list[OpenAIChatClient] = []

    def make(srv: ScriptedServer, **kwargs: Any) -> OpenAIChatClient:
        options: dict[str, Any] = {"backoff_s": 0.001, "max_retries": 2, "role": "weak"}
        made.append(OpenAIChatClient(srv.base_url, "scripted", **(options | kwargs)))
        return made[-1]

    yield make
    for c in made:
        await c.aclose()


# -- reasoning and shapes --------------------------------------------------------------------


async def test_a_think_block_before_json_is_separated_and_the_json_parsed(scripted, client):
    srv = scripted(lambda body: "<think>\nCheck the facts.\n</think>\n\n" + GOOD)
    result = await client(srv).chat(_ask(response_model=Out))
    assert result.parsed == [Out(ok=True)]
    assert result.texts == [GOOD] and result.reasoning == ["Check the facts."]


async def test_a_reasoning_field_never_reaches_the_answer(scripted, client):
    srv = scripted(lambda body: Reply(text="The notice was late.", reasoning="step 1 ... step 9"))
    result = await client(srv).chat(_ask())
    assert result.texts == ["The notice was late."] and result.reasoning == ["step 1 ... step 9"]


async def test_fenced_json_is_parsed(scripted, client):
    srv = scripted(lambda body: "```json\n" + GOOD + "\n```")
    assert (await client(srv).chat(_ask(response_model=Out))).parsed == [Out(ok=True)]


async def test_list_content_is_joined(scripted, client):
    parts = [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": GOOD}]
    srv = scripted(lambda body: Reply(content=parts))
    result = await client(srv).chat(_ask(response_model=Out))
    assert result.parsed == [Out(ok=True)] and result.reasoning == ["hmm"]


# -- malformed 200s: retried, never cached ---------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (Reply(text=""), "empty content"),
        (Reply(content=None, reasoning="only thoughts"), "only reasoning"),
        (Reply(content=[{"type": "image_url"}]), "unknown type"),
        (Reply(usage={"prompt_tokens": "12", "completion_tokens": "3"}), "usage.prompt_tokens"),
        (Reply(content={"answer": 1}), "not text"),
    ],
    ids=["empty", "only-reasoning", "unknown-part", "usage-strings", "dict-content"],
)
async def test_a_malformed_200_is_a_retried_bad_reply_and_never_cached(
    scripted, client, tmp_path, bad, says
):
    srv = scripted(lambda body: bad)
    cache = CallCache(tmp_path)
    c = client(srv, cache=cache, max_retries=1)
    with pytest.raises(CallError, match=says) as err:
        await c.chat(_ask())
    assert err.value.kind == "bad_reply" and err.value.is_infra
    assert srv.count() == 2 and len(cache) == 0
    assert c.stats.causes["bad_reply"] == 2
    srv.responder = lambda body: "fine"  # the server heals: the rerun is not poisoned
    assert (await c.chat(_ask())).texts == ["fine"]
    cache.close()


async def test_a_malformed_reply_already_in_the_cache_is_fetched_again(scripted, client, tmp_path):
    srv = scripted(lambda body: "fine")
    cache = CallCache(tmp_path)
    c = client(srv, cache=cache)
    body = build_body(_ask(), "scripted", 0, WireOptions())
    bad = {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "many"}}
    cache.put(cache_key(body), bad)  # written by an older version that cached before checking
    result = await c.chat(_ask())
    assert result.texts == ["fine"] and not result.cached and srv.count() == 1
    assert cache.get(cache_key(body))["choices"][0]["message"]["content"] == "fine"
    cache.close()


async def test_an_html_page_is_named_as_such(scripted, client):
    html = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>hi</body></html>"
    srv = scripted(lambda body: Reply(fault="garbage"))
    srv.responder = None
    c = client(srv, max_retries=0)
    srv.queue(Reply(fault="garbage"))
    with pytest.raises(CallError, match="HTML page") as err:
        await c.chat(_ask())
    assert err.value.kind == "bad_reply"
    assert html  # the scripted garbage body starts with <!doctype html>


# -- finish_reason ---------------------------------------------------------------------------


async def test_a_cut_json_reply_names_truncation_and_the_setting(scripted, client):
    srv = scripted(lambda body: Reply(text='{"ok": tr', finish_reason="length"))
    c = client(srv, role="challenger")
    with pytest.raises(
        CallError, match=r"cut at max_tokens=64.*models\.challenger\.max_tokens"
    ) as err:
        await c.chat(_ask(response_model=Out, max_tokens=64))
    assert err.value.kind == "truncated" and srv.count() == 1  # no resample: a new seed won't help
    assert c.stats.causes["truncated"] == 1


async def test_a_cut_answer_is_asked_again_once_with_the_larger_budget(scripted, client):
    def answer(body: dict[str, Any]) -> Reply:
        if body["max_tokens"] < 1024:
            return Reply(text="First, the rule is", finish_reason="length")
        return Reply(text="First, the rule is clause 9. CONCLUSION: late.")

    srv = scripted(answer)
    result = await client(srv).chat(_ask(max_tokens=256, retry_max_tokens=1024))
    assert not result.truncated and result.texts[0].endswith("late.")
    assert [r.body["max_tokens"] for r in srv.requests] == [256, 1024]


async def test_an_answer_cut_twice_comes_back_marked_truncated(scripted, client):
    srv = scripted(lambda body: Reply(text="First, the rule is", finish_reason="length"))
    c = client(srv)
    result = await c.chat(_ask(max_tokens=256, retry_max_tokens=1024))
    assert result.truncated and result.finish_reasons == ["length"] and result.max_tokens == 1024
    assert c.stats.causes["truncated"] == 1


async def test_a_reply_that_is_all_reasoning_when_cut_is_a_truncated_call_naming_thinking(
    scripted, client
):
    srv = scripted(lambda body: Reply(text="<think>\nThe user wants", finish_reason="length"))
    c = client(srv, role="judge")
    with pytest.raises(CallError, match=r"max_tokens=4.*models\.judge\.thinking: off") as err:
        await c.chat(_ask(max_tokens=4))
    assert err.value.kind == "truncated"


# -- rate limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["seconds", "http-date", "ms"])
def test_retry_after_reads_every_form(form):
    now = 1_800_000_000.0
    headers = {
        "seconds": {"retry-after": "20"},
        "http-date": {"retry-after": formatdate(now + 20, usegmt=True)},
        "ms": {"retry-after-ms": "20000"},
    }[form]
    assert retry_after(headers, now=now) == pytest.approx(20.0, abs=1.0)


def test_a_past_http_date_means_now():
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


async def test_an_http_date_retry_after_is_waited(scripted, client):
    srv = scripted(lambda body: "fine")
    srv.queue(Reply(status=429, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}))
    c = client(srv)
    await asyncio.wait_for(c.chat(_ask()), timeout=10)
    assert srv.requests[1].time - srv.requests[0].time >= 0.9  # the date has 1 s resolution


async def test_a_429_pauses_every_call_of_the_role(scripted, client):
    """One call's 429 starts a cooldown the role's other calls wait out, spending no retries."""
    srv = scripted(lambda body: "fine")
    srv.queue(Reply(status=429, headers={"Retry-After": "0.5"}))
    c = client(srv, max_concurrency=1, max_retries=0)
    results = await asyncio.gather(c.chat(_ask(seed=1)), c.chat(_ask(seed=2)))
    assert [r.texts for r in results] == [["fine"], ["fine"]]
    times = sorted(r.time for r in srv.requests)
    assert times[1] - times[0] >= 0.45 and times[2] - times[0] >= 0.45
    assert c.stats.causes["http_429"] == 1 and c.stats.failures == 0


async def test_429s_without_a_header_back_off_instead_of_burning_retries(scripted, client):
    srv = scripted(lambda body: "fine")
    srv.queue(*[Reply(status=429)] * 3)
    c = client(srv, max_retries=1)
    result = await asyncio.wait_for(c.chat(_ask()), timeout=20)
    assert result.texts == ["fine"] and srv.count() == 4  # 3 × 429 with max_retries=1
    gaps = [b.time - a.time for a, b in zip(srv.requests, srv.requests[1:], strict=False)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9  # 1 s, then 2 s


async def test_a_role_still_rate_limited_after_its_wait_budget_says_429_and_the_setting(
    scripted, client
):
    srv = scripted(lambda body: Reply(status=429, headers={"Retry-After": "0.2"}))
    c = client(srv, rate_limit_wait_s=1.0)
    with pytest.raises(CallError, match=r"429.*rate_limit_wait_s") as err:
        await asyncio.wait_for(c.chat(_ask()), timeout=10)
    assert err.value.kind == "http_429"


# -- requests no retry can fix ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        ("This model's maximum context length is 2048 tokens", "vllm.max_model_len"),
        (
            "Unsupported parameter: 'max_tokens' is not supported with this model",
            "reasoning_api: true",
        ),
        ("Invalid schema for response_format 'Out'", "strict_json: false"),
        ("something else entirely", "models.weak"),
    ],
    ids=["context", "reasoning-model", "schema", "other"],
)
async def test_a_400_stops_the_run_naming_role_model_and_setting(scripted, client, message, hint):
    srv = scripted(lambda body: Reply(status=400, text=message))
    with pytest.raises(BackendError, match="weak") as err:
        await client(srv).chat(_ask())
    assert "scripted" in str(err.value) and hint in str(err.value)
    assert srv.count() == 1


# -- request shaping -------------------------------------------------------------------------


@pytest.mark.parametrize(("thinking", "sent"), [("on", True), ("off", False)])
async def test_thinking_is_sent_as_chat_template_kwargs(scripted, client, thinking, sent):
    srv = scripted(lambda body: "fine")
    await client(srv, options=WireOptions(thinking=thinking, reasoning_effort="low")).chat(_ask())
    body = srv.requests[0].body
    assert body["chat_template_kwargs"] == {"enable_thinking": sent}
    assert body["reasoning_effort"] == "low"


async def test_thinking_auto_sends_nothing_extra(scripted, client):
    srv = scripted(lambda body: "fine")
    await client(srv).chat(_ask())
    assert "chat_template_kwargs" not in srv.requests[0].body


@pytest.mark.parametrize("model", ["o3-mini", "o4-mini", "gpt-5", "openai/o1"])
def test_openai_reasoning_models_get_their_parameters(model):
    body = build_body(_ask(max_tokens=300, top_logprobs=5), model, 0, WireOptions())
    assert body["max_completion_tokens"] == 300
    assert not {"max_tokens", "temperature", "top_p", "logprobs", "top_logprobs"} & set(body)


def test_other_models_keep_the_classic_parameters_unless_told():
    body = build_body(_ask(max_tokens=300), "Qwen/Qwen3-8B", 0, WireOptions())
    assert body["max_tokens"] == 300 and "temperature" in body
    forced = build_body(_ask(max_tokens=300), "my-proxy-name", 0, WireOptions(reasoning_api=True))
    assert "max_completion_tokens" in forced


async def test_json_schemas_are_sent_strict_unless_turned_off(scripted, client):
    srv = scripted(lambda body: GOOD)
    await client(srv).chat(_ask(response_model=Out))
    await client(srv, options=WireOptions(strict_json=False)).chat(_ask(response_model=Out))
    specs = [r.body["response_format"]["json_schema"] for r in srv.requests]
    assert specs[0]["strict"] is True and "strict" not in specs[1]


async def test_extra_body_is_sent_and_keyed(scripted, client, tmp_path):
    srv = scripted(lambda body: "fine")
    cache = CallCache(tmp_path)
    await client(srv, cache=cache, options=WireOptions(extra_body={"top_k": 20})).chat(_ask())
    await client(srv, cache=cache, options=WireOptions(extra_body={"top_k": 40})).chat(_ask())
    assert [r.body["top_k"] for r in srv.requests] == [20, 40]  # no stale cache hit
    cache.close()


def test_schema_json_is_valid():
    body = build_body(_ask(response_model=Out), "m", 0, WireOptions())
    assert json.loads(json.dumps(body))["response_format"]["type"] == "json_schema"


async def test_a_judge_verdict_cut_after_its_first_words_is_used_and_no_cause(scripted, client):
    srv = scripted(lambda body: Reply(text="Yes, the answer", finish_reason="length"))
    c = client(srv, role="judge")
    result = await c.chat(_ask(max_tokens=4))
    assert result.texts == ["Yes, the answer"] and result.truncated
    assert c.stats.causes == {}
