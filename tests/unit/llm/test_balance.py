"""Several endpoints per role (``autodata/llm/balance.py``) against 3 scripted loopback servers:
least-outstanding-requests choice, a server killed mid-run, recovery after the cool-off, the
settings, and the preflight of a role with one dead endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from autodata.errors import BackendError, CallError
from autodata.llm import preflight
from autodata.llm.backends import open_clients
from autodata.llm.balance import BalancedClient
from autodata.llm.cache import CallCache
from autodata.llm.client import ChatRequest, OpenAIChatClient
from autodata.settings import Models, Paths, RoleModel, Settings
from autodata.testing.scripted_server import RecordedRequest, ScriptedServer

Scripted = Callable[..., ScriptedServer]
CHAT = "/v1/chat/completions"
Lines = list[tuple[float, str]]  # (time.monotonic(), announced line)


def named(name: str) -> Callable[[dict[str, Any]], str]:
    """A responder whose answer says which server gave it: ``"<name>:<user message>"``."""
    return lambda body: f"{name}:{body['messages'][-1]['content']}"


def asked(server: ScriptedServer) -> list[str]:
    """The user message of every chat request the server received, in order."""
    return [r.body["messages"][-1]["content"] for r in server.requests if r.path == CHAT]


def models_probes(server: ScriptedServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path == "/v1/models"]


@pytest.fixture
def lines() -> Lines:
    return []


@pytest.fixture
async def balanced(lines: Lines) -> AsyncIterator[Callable[..., BalancedClient]]:
    """Factory: a judge client over the given servers, with fast retries and a short cool-off."""
    made: list[BalancedClient] = []

    def make(
        servers: Iterable[ScriptedServer], *, cool_off_s: float = 0.2, **kwargs: Any
    ) -> BalancedClient:
        options: dict[str, Any] = {"backoff_s": 0.001, "max_retries": 1, "timeout_s": 5.0}
        clients = [
            OpenAIChatClient(s.base_url, "scripted", role="judge", **(options | kwargs))
            for s in servers
        ]
        made.append(
            BalancedClient(
                clients,
                role="judge",
                cool_off_s=cool_off_s,
                announce=lambda line: lines.append((time.monotonic(), line)),
            )
        )
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


async def run_calls(
    client: BalancedClient, markers: list[str], window: int, out: dict[str, str] | None = None
) -> dict[str, str]:
    """Every marker asked once, ``window`` calls in flight; answers by marker."""
    out = {} if out is None else out
    todo = iter(markers)

    async def worker() -> None:
        for marker in todo:
            result = await client.chat(ChatRequest.of("system", marker, max_tokens=8))
            assert marker not in out, f"{marker} answered twice"
            out[marker] = result.texts[0]

    await asyncio.gather(*(worker() for _ in range(window)))
    return out


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_calls_at_once_spread_evenly_and_concurrency_is_the_sum(
    scripted: Scripted, balanced: Callable[..., BalancedClient]
) -> None:
    servers = [scripted(named(n), latency_s=0.05) for n in "abc"]
    client = balanced(servers, max_concurrency=16)
    assert client.max_concurrency == 48
    out = await run_calls(client, [f"q{i}" for i in range(30)], window=30)
    assert len(out) == 30
    assert [len(asked(s)) for s in servers] == [10, 10, 10]
    assert client.stats.calls == 30 and client.stats.failures == 0
    assert [e["answered"] for e in client.endpoint_stats.values()] == [10, 10, 10]


async def test_one_at_a_time_the_calls_go_round_the_endpoints(
    scripted: Scripted, balanced: Callable[..., BalancedClient]
) -> None:
    servers = [scripted(named(n)) for n in "abc"]
    await run_calls(balanced(servers), [f"q{i}" for i in range(9)], window=1)
    assert [len(asked(s)) for s in servers] == [3, 3, 3]  # not all to the first on ties


async def test_a_slow_endpoint_gets_fewer_calls_than_round_robin_would_give_it(
    scripted: Scripted, balanced: Callable[..., BalancedClient]
) -> None:
    slow = scripted(named("slow"), latency_s=1.0)
    fast = [scripted(named(f"fast{i}"), latency_s=0.01) for i in range(2)]
    client = balanced([slow, *fast], max_concurrency=8)
    out = await run_calls(client, [f"q{i:02d}" for i in range(60)], window=6)
    assert len(out) == 60
    # Round robin would send it 20; least-outstanding sends it a call only when its own finish.
    assert len(asked(slow)) <= 8
    assert len(asked(slow)) + sum(len(asked(s)) for s in fast) == 60


async def test_a_killed_endpoint_s_calls_move_to_the_others_none_lost_or_repeated(
    scripted: Scripted, balanced: Callable[..., BalancedClient], lines: Lines
) -> None:
    servers = {name: scripted(named(name), latency_s=0.05) for name in "abc"}
    killed = servers["b"]
    client = balanced(servers.values(), max_concurrency=8)
    markers = [f"q{i:03d}" for i in range(120)]
    out: dict[str, str] = {}

    async def kill_after(n_answered: int) -> None:
        await wait_until(lambda: len(out) >= n_answered)
        await asyncio.to_thread(killed.close)

    await asyncio.gather(run_calls(client, markers, 9, out), kill_after(30))

    assert sorted(out) == markers  # every call answered
    by_b = {m for m, text in out.items() if text.startswith("b:")}
    survivors = asked(servers["a"]) + asked(servers["c"])
    # The live servers saw each call at most once: exactly the calls b did not answer.
    assert len(survivors) == len(set(survivors))
    assert set(survivors) == set(markers) - by_b
    # The only calls sent twice are those b had in flight when it was killed.
    in_flight = set(asked(killed)) - by_b
    assert in_flight and in_flight <= set(survivors)
    assert len(asked(killed)) == len(set(asked(killed)))
    assert sum(len(asked(s)) for s in servers.values()) == len(markers) + len(in_flight)

    counts = client.endpoint_stats[killed.base_url]
    assert counts["up"] is False and counts["marked_down"] == 1
    assert counts["moved_away"] >= len(in_flight)
    assert client.stats.failures == 0  # moved calls are retries, not failures
    assert client.stats.causes["connection"] >= len(in_flight)
    assert any(f"endpoint {killed.base_url} is down" in line for _, line in lines)


async def test_a_down_endpoint_is_probed_after_the_cool_off_and_takes_calls_again(
    scripted: Scripted, balanced: Callable[..., BalancedClient], lines: Lines
) -> None:
    a, b = scripted(named("a")), scripted(named("b"))
    port, url = b.port, b.base_url
    client = balanced([a, b], cool_off_s=0.5)
    b.close()
    out = await run_calls(client, [f"q{i}" for i in range(6)], window=2)
    assert all(text.startswith("a:") for text in out.values())
    assert client.endpoint_stats[url]["up"] is False
    down_at = next(t for t, line in lines if "is down" in line)

    back = scripted(named("b2"), port=port)  # the same URL, served again
    await wait_until(lambda: client.endpoint_stats[url]["up"])
    assert models_probes(back)[0].time - down_at >= 0.45  # not probed before the cool-off
    assert any(f"endpoint {url} is back" in line for _, line in lines)
    out = await run_calls(client, [f"r{i}" for i in range(10)], window=10)
    assert sum(text.startswith("b2:") for text in out.values()) == 5  # half, as before


async def test_with_every_endpoint_down_the_usual_call_error_comes_out(
    scripted: Scripted, balanced: Callable[..., BalancedClient]
) -> None:
    servers = [scripted(), scripted()]
    client = balanced(servers)
    for server in servers:
        server.close()
    for _ in range(2):  # the second call finds both marked down: one plain try, same error
        with pytest.raises(CallError) as err:
            await client.chat(ChatRequest.of("system", "hello"))
        assert err.value.kind == "connection"
        assert "all 2 endpoints of judge are down" in str(err.value)
        assert "models.judge.base_url" in str(err.value)
    assert client.stats.failures == 2


async def test_the_cache_key_does_not_depend_on_the_endpoint(
    scripted: Scripted, balanced: Callable[..., BalancedClient], tmp_path: Path
) -> None:
    servers = [scripted(named(n)) for n in "abc"]
    cache = CallCache(tmp_path / "cache")
    markers = [f"q{i}" for i in range(6)]
    first = await run_calls(balanced(servers, cache=cache), markers, window=1)
    # The same calls in the other endpoint order: most land on another endpoint than before.
    again = balanced(servers[::-1], cache=cache)
    second = await run_calls(again, markers, window=1)
    assert second == first
    assert sum(len(asked(s)) for s in servers) == 6  # nothing asked twice
    assert again.stats.cache_hits == 6
    cache.close()


def test_base_url_takes_one_url_or_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    one = RoleModel(backend="openai", base_url="http://a:8000/v1")
    many = RoleModel(backend="openai", base_url=["http://a:8000/v1", "http://b:8000/v1"])
    assert one.base_urls == ["http://a:8000/v1"]
    assert many.base_urls == ["http://a:8000/v1", "http://b:8000/v1"]
    assert RoleModel(backend="openai", base_url=["http://a:8000/v1"]).base_url == "http://a:8000/v1"
    assert RoleModel().base_urls == []  # managed vLLM
    with pytest.raises(ValidationError, match="same URL twice"):
        RoleModel(backend="openai", base_url=["http://a:8000/v1", "http://a:8000/v1/"])
    with pytest.raises(ValidationError, match="at least one"):
        RoleModel(backend="openai", base_url=[])

    monkeypatch.setenv("AUTODATA_MODELS__JUDGE__BACKEND", "openai")
    monkeypatch.setenv("AUTODATA_MODELS__JUDGE__BASE_URL", '["http://x:8000/v1", "http://y:8000/v1"]')  # fmt: skip
    monkeypatch.setenv("AUTODATA_MODELS__WEAK__BACKEND", "openai")
    monkeypatch.setenv("AUTODATA_MODELS__WEAK__BASE_URL", "http://z:8000/v1")
    settings = Settings()
    assert settings.models.judge.base_urls == ["http://x:8000/v1", "http://y:8000/v1"]
    assert settings.models.weak.base_urls == ["http://z:8000/v1"]


def judge_settings(root: Path, urls: list[str]) -> Settings:
    judge = RoleModel(backend="openai", base_url=urls, model="scripted", max_concurrency=4)
    paths = Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})
    return Settings(models=Models(judge=judge), paths=paths)


async def test_preflight_leaves_out_a_dead_endpoint_with_a_warning(
    scripted: Scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preflight, "RETRY_S", 0.0)
    a, b, dead = scripted(named("a")), scripted(named("b")), scripted()
    dead.close()
    settings = judge_settings(tmp_path, [a.base_url, dead.base_url, b.base_url])
    announced: list[str] = []
    async with open_clients(settings, ("judge",), use_cache=False, announce=announced.append) as clients:  # fmt: skip
        client = clients["judge"]
        assert isinstance(client, BalancedClient) and client.max_concurrency == 12
        assert client.endpoint_stats[dead.base_url]["up"] is False
        out = await run_calls(client, [f"q{i}" for i in range(8)], window=8)
    assert sum(text.startswith("a:") for text in out.values()) == 4
    assert sum(text.startswith("b:") for text in out.values()) == 4
    warning = [line for line in announced if line.startswith("warning:")]
    assert warning == [
        f"warning: judge: cannot reach {dead.base_url} (ConnectError after 3 tries); its calls "
        "go to the other 2 endpoint(s) until it answers again"
    ]
    assert len(models_probes(a)) == len(models_probes(b)) == 1


async def test_preflight_stops_the_run_when_no_endpoint_answers(
    scripted: Scripted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preflight, "RETRY_S", 0.0)
    servers = [scripted(), scripted()]
    for server in servers:
        server.close()
    settings = judge_settings(tmp_path, [s.base_url for s in servers])
    with pytest.raises(BackendError, match="judge: cannot reach any of its 2 endpoints") as err:
        async with open_clients(settings, ("judge",), use_cache=False):
            pass
    assert "AUTODATA_MODELS__JUDGE__BASE_URL" in str(err.value)


async def test_a_single_url_still_gets_the_plain_client(scripted: Scripted, tmp_path: Path) -> None:
    server = scripted()
    settings = judge_settings(tmp_path, [server.base_url])
    async with open_clients(settings, ("judge",), use_cache=False) as clients:
        assert isinstance(clients["judge"], OpenAIChatClient)
