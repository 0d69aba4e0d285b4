"""The one LLM seam: an async client over the OpenAI chat-completions wire format.

Every role (challenger, verifier, weak, strong, judge) talks through :class:`ChatClient`.
Backends differ only in how the server is reached or started (see ``backends.py``); request
bodies are shaped in ``wire.py``; every reply — fresh or cached — goes through
:func:`autodata.llm.reply.normalise` and its ``finish_reason`` is checked here, in one place,
before anything caches, parses or grades it. Retries live here, at the network, and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from pydantic import BaseModel
from yarl import URL

from autodata._killpoints import killpoint
from autodata.errors import CallError
from autodata.llm import status
from autodata.llm.cache import CallCache, cache_key
from autodata.llm.reply import BadReply, InvalidOutput, Reply, decode, normalise, parse_json
from autodata.llm.status import Transient
from autodata.llm.wire import GUIDANCE_HINTS, ChatRequest, WireOptions, build_body

__all__ = [
    "GUIDANCE_HINTS",
    "ChatClient",
    "ChatRequest",
    "ChatResult",
    "OpenAIChatClient",
    "WireOptions",
]

RESAMPLE_SEED_STRIDE = 1_000_003  # seeds of re-asks after unparseable JSON: seed + k * stride
RATE_LIMIT_FIRST_S = 1.0  # a 429 without Retry-After: wait this, doubling per 429 in a row
RATE_LIMIT_MAX_S = 60.0
_log = logging.getLogger(__name__)


@dataclass
class ChatResult:
    """What came back, per choice: the answer text (reasoning removed), the reasoning apart,
    ``finish_reason`` and, if JSON was asked for, the parsed object."""

    texts: list[str]
    parsed: list[BaseModel] = field(default_factory=list)
    top_logprobs: list[dict[str, float]] = field(default_factory=list)  # per choice, first token
    tokens_in: int = 0
    tokens_out: int = 0
    cached: bool = False
    model: str = ""
    reasoning: list[str] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)
    max_tokens: int = 0  # the budget the reply was produced with
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the body as the server sent it

    def __post_init__(self) -> None:  # results built by hand (test doubles) read as plain stops
        self.reasoning += [""] * (len(self.texts) - len(self.reasoning))
        self.finish_reasons += ["stop"] * (len(self.texts) - len(self.finish_reasons))

    @property
    def truncated(self) -> bool:
        """True when any choice stopped at the token budget."""
        return "length" in self.finish_reasons


@dataclass
class CallStats:
    """Counters per client (per role), reported in the run summary and metrics.

    ``causes`` counts every failed attempt and every truncated reply by kind (``http_429``,
    ``timeout``, ``http_503``, ``connection``, ``bad_reply``, ``truncated``, ``invalid_output``).
    """

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    resamples: int = 0
    failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    causes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if k != "causes"},
            "causes": dict(self.causes),
        }


class ChatClient(Protocol):
    """The interface every stage uses. One abstract method, like simonw/llm's ``execute``."""

    model: str
    stats: CallStats
    max_concurrency: int  # calls it runs at once; stages keep about twice as many jobs going

    async def chat(self, request: ChatRequest) -> ChatResult: ...


class OpenAIChatClient:
    """Client for any OpenAI-compatible server (vLLM, SGLang, llama.cpp, OpenAI)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_concurrency: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        max_resamples: int = 2,
        cache: CallCache | None = None,
        options: WireOptions | None = None,
        backoff_s: float = 0.5,
        rate_limit_wait_s: float = 600.0,
        role: str = "",
        revive: Callable[[], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_concurrency = max_concurrency
        self.role = role or model
        self.stats = CallStats()
        self._cache = cache
        self._options = options or WireOptions()
        self._retries = max_retries
        self._resamples = max_resamples
        self._backoff = backoff_s
        self._rate_wait = rate_limit_wait_s  # per call, across 429s (they spend no retries)
        self._cooldown_until = 0.0  # loop time until which the whole role pauses (429)
        self._rate_step = RATE_LIMIT_FIRST_S
        self._revive = revive  # called before retrying a connection failure (managed servers)
        self._limit = asyncio.Semaphore(max_concurrency)
        self._url = f"{self.base_url}/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=min(timeout_s, 10.0), sock_read=timeout_s
        )
        self._max_connections = max_concurrency
        self._session: aiohttp.ClientSession | None = None  # made on first use, in the loop
        self._proxy: tuple[str | None, aiohttp.BasicAuth | None] = (None, None)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatClient(role={self.role!r}, model={self.model!r}, url={self.base_url!r})"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        """The keep-alive HTTP session. aiohttp, not httpx: ~10× less CPU per request at high
        concurrency, which is what limits throughput on 2 cores (benchmarks/README.md)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._proxy = _env_proxy(self._url)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, timeout=self._timeout
            )
        return self._session

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Run one call: cache, network with retries, normalisation, ``finish_reason``, JSON.

        Raises :class:`CallError` (kind ``truncated`` for a reply cut at ``max_tokens`` that
        cannot be used: JSON, or nothing but reasoning), :class:`BackendError` for a request
        the server rejects (HTTP 400/413/422: no retry can fix it).
        """
        result = await self._resampled(request)
        if result.truncated and request.retry_max_tokens > request.max_tokens:
            self.stats.retries += 1
            result = await self._resampled(replace(request, max_tokens=request.retry_max_tokens))
        if not result.truncated:
            return result
        if not any(t.strip() for t in result.texts):
            self.stats.causes["truncated"] += 1
            self.stats.failures += 1
            raise CallError("truncated", self._cut_message(result, "the reply was all reasoning"))
        if request.retry_max_tokens:  # a cut answer the caller cannot use (a judge's verdict is
            self.stats.causes["truncated"] += 1  # in its first words: its cuts are no cause)
        return result

    async def _resampled(self, request: ChatRequest) -> ChatResult:
        """JSON replies that do not validate are re-asked with a new seed (``max_resamples``)."""
        for attempt in range(self._resamples + 1):
            body = build_body(
                request, self.model, request.seed + attempt * RESAMPLE_SEED_STRIDE, self._options
            )
            raw, reply, cached = await self._fetch(
                body, json_expected=request.response_model is not None
            )
            result = self._result(reply, cached, request.max_tokens)
            result.raw = raw
            if request.response_model is None:
                return result
            if result.truncated:  # a cut JSON object never validates; a new seed won't help
                self.stats.causes["truncated"] += 1
                self.stats.failures += 1
                raise CallError(
                    "truncated", self._cut_message(result, "the JSON reply was incomplete")
                )
            try:
                result.parsed = [parse_json(request.response_model, t) for t in result.texts]
                return result
            except InvalidOutput as exc:
                last = exc
                self.stats.resamples += 1
                self.stats.causes["invalid_output"] += 1
        self.stats.failures += 1
        raise CallError(
            "invalid_output",
            f"{self.role}: unusable JSON after {self._resamples + 1} tries: {last}",
        )

    def _cut_message(self, result: ChatResult, what: str) -> str:
        thinking = any(result.reasoning)
        fix = f"raise models.{self.role}.max_tokens"
        if thinking:
            fix += f" or turn thinking off (models.{self.role}.thinking: off)"
        return f"{self.role}: reply cut at max_tokens={result.max_tokens} ({what}); {fix}"

    async def _fetch(
        self, body: dict[str, Any], *, json_expected: bool
    ) -> tuple[dict[str, Any], Reply, bool]:
        # One slot from the cache look-up through the first attempt: a stage that starts N calls
        # at once does their CPU work as slots free up, not all of it first while replies wait.
        async with self._limit:
            key = cache_key(body, self._options.extra_body)
            if self._cache is not None and (hit := self._cache.get(key)) is not None:
                try:
                    reply = self._checked(hit, json_expected)
                    self.stats.cache_hits += 1
                    return hit, reply, True
                except Transient:  # stored by an older version without checks: fetch again
                    _log.debug("%s: ignoring a malformed cached reply", self.role)
            try:
                await self._cooled()
                self.stats.calls += 1
                raw, reply = await self._post(body, json_expected)
                failure = None
            except Transient as exc:
                failure = exc
        if failure is not None:
            raw, reply = await self._retry(body, failure, json_expected)
        if self._cache is not None:  # committed before the reply is used (kill-anywhere)
            await self._cache.aput(key, raw)
        killpoint(f"llm:response:{self.role}")
        return raw, reply, False

    async def _retry(
        self, body: dict[str, Any], failure: Transient, json_expected: bool
    ) -> tuple[dict[str, Any], Reply]:
        """Attempts after the first, each after a wait, each in a slot of its own. 429s spend
        no retries: the whole role pauses (shared cooldown), for up to ``rate_limit_wait_s``."""
        loop = asyncio.get_running_loop()
        attempt, limited, deadline = 0, 0, loop.time() + self._rate_wait
        while True:
            self.stats.causes[failure.kind] += 1
            if failure.kind == "http_429":
                limited += 1
                wait = self._rate_limited(failure.retry_after, first=limited == 1)
                if loop.time() + wait > deadline:
                    break
            else:
                attempt += 1
                if attempt > self._retries:
                    break
                wait = self._backoff_for(failure, attempt)
            self.stats.retries += 1
            await asyncio.sleep(wait)
            try:
                async with self._limit:
                    await self._cooled()
                    self.stats.calls += 1
                    return await self._post(body, json_expected)
            except Transient as exc:
                failure = exc
        self.stats.failures += 1
        raise CallError(failure.kind, self._gave_up(failure, attempt + limited)) from None

    def _backoff_for(self, failure: Transient, attempt: int) -> float:
        if failure.kind == "connection" and self._revive is not None:
            self._revive()  # blocking: no call to this server can succeed meanwhile
        if failure.retry_after is not None:
            return min(failure.retry_after, self._rate_wait)
        return self._backoff * 2 ** (attempt - 1) * (1 + random.random())

    def _rate_limited(self, retry_after: float | None, *, first: bool) -> float:
        """Start (or extend) the role's cooldown after a 429; returns this call's wait.

        The server's ``Retry-After`` is honoured; without one, or when it keeps answering 429
        after its own wait, the role backs off exponentially (1 s doubling to 60 s)."""
        if retry_after is None or not first:
            step, self._rate_step = self._rate_step, min(self._rate_step * 2, RATE_LIMIT_MAX_S)
            retry_after = max(retry_after or 0.0, step)
        now = asyncio.get_running_loop().time()
        self._cooldown_until = max(self._cooldown_until, now + retry_after)
        return self._cooldown_until - now

    async def _cooled(self) -> None:
        """Wait out the role's shared cooldown, if one is running."""
        delay = self._cooldown_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _gave_up(self, failure: Transient, tries: int) -> str:
        if failure.kind == "http_429":
            return (
                f"{self.role}: {failure}; still rate limited (HTTP 429) after "
                f"{self._rate_wait:g} s — lower models.{self.role}.max_concurrency or raise "
                f"models.{self.role}.rate_limit_wait_s"
            )
        return f"{self.role}: {failure} after {tries} tries"

    async def _post(
        self, body: dict[str, Any], json_expected: bool
    ) -> tuple[dict[str, Any], Reply]:
        url = self._url
        try:
            session = self._http()
            proxy, proxy_auth = self._proxy
            async with session.post(
                url, data=_encode(body), proxy=proxy, proxy_auth=proxy_auth
            ) as resp:
                code, headers, raw = resp.status, resp.headers, await resp.read()
        except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            raise Transient("timeout", f"timeout calling {url}") from exc
        except aiohttp.ClientError as exc:  # refused, reset, truncated body
            raise Transient(
                "connection", f"connection to {url} failed ({type(exc).__name__})"
            ) from exc
        _log.debug('HTTP Request: POST %s "%d"', url, code)
        if code != 200:
            status.raise_for(code, headers, raw, url, role=self.role, model=self.model)
        try:
            data = decode(raw)
        except ValueError:
            raise Transient("bad_reply", f"bad reply from {url}: {status.not_json(raw)}") from None
        self._rate_step = RATE_LIMIT_FIRST_S
        return data, self._checked(data, json_expected)

    def _checked(self, data: Any, json_expected: bool) -> Reply:
        """Normalise a decoded body; a malformed or empty ``200`` is a retryable bad reply."""
        try:
            reply = normalise(data, json_expected=json_expected)
        except BadReply as exc:
            raise Transient("bad_reply", f"bad reply from {self._url}: {exc}") from None
        if not any(c.text.strip() for c in reply.choices) and not any(
            c.truncated for c in reply.choices
        ):
            what = (
                "only reasoning, no answer"
                if any(c.reasoning for c in reply.choices)
                else "empty content"
            )
            raise Transient("bad_reply", f"bad reply from {self._url}: {what}")
        return reply

    def _result(self, reply: Reply, cached: bool, max_tokens: int) -> ChatResult:
        result = ChatResult(
            texts=[c.text for c in reply.choices],
            top_logprobs=[c.top_logprobs for c in reply.choices],
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            cached=cached,
            model=reply.model or self.model,
            reasoning=[c.reasoning for c in reply.choices],
            finish_reasons=[c.finish_reason for c in reply.choices],
            max_tokens=max_tokens,
        )
        if not cached:  # before parsing: a rejected reply's tokens were spent too
            self.stats.tokens_in += result.tokens_in
            self.stats.tokens_out += result.tokens_out
        return result


def _env_proxy(url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The HTTP(S)_PROXY for ``url`` unless NO_PROXY exempts it, read once per session: what
    httpx's ``trust_env`` did, without aiohttp's two thread-pool hops per request."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None
    return str(proxy), auth


def _encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)  # ~15× faster than json.dumps on a prompt with non-ASCII text
