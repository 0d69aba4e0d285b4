"""The one LLM seam: an async client over the OpenAI chat-completions wire format.

Every role (challenger, verifier, weak, strong, judge) talks through :class:`ChatClient`.
Backends differ only in how the server is reached or started (see ``backends.py``).
Retries live here, at the network, and nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from pydantic import BaseModel, ValidationError
from yarl import URL

from autodata._killpoints import killpoint
from autodata.errors import BackendError, CallError
from autodata.llm.cache import CallCache, cache_key

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
GUIDANCE_HINTS = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "}
RESAMPLE_SEED_STRIDE = 1_000_003  # seeds of re-asks after unparseable JSON: seed + k * stride
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatRequest:
    """One chat call. ``response_model`` asks for JSON that validates against that model."""

    messages: tuple[tuple[str, str], ...]  # (role, content)
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    n: int = 1
    response_model: type[BaseModel] | None = None
    top_logprobs: int = 0  # >0: ask for the first tokens' top logprobs

    @staticmethod
    def of(system: str, user: str, **kwargs: Any) -> ChatRequest:
        """A request with one system and one user message."""
        return ChatRequest(messages=(("system", system), ("user", user)), **kwargs)


@dataclass
class ChatResult:
    """What came back: one text per choice, parsed objects if JSON was asked for."""

    texts: list[str]
    parsed: list[BaseModel] = field(default_factory=list)
    top_logprobs: list[dict[str, float]] = field(default_factory=list)  # per choice, first token
    tokens_in: int = 0
    tokens_out: int = 0
    cached: bool = False
    model: str = ""


@dataclass
class CallStats:
    """Counters per client (per role), reported in the run summary and metrics."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    resamples: int = 0
    failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


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
        guidance_hints: bool = False,
        backoff_s: float = 0.5,
        role: str = "",
        revive: Callable[[], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_concurrency = max_concurrency
        self.role = role or model
        self.stats = CallStats()
        self._cache = cache
        self._hints = guidance_hints
        self._retries = max_retries
        self._resamples = max_resamples
        self._backoff = backoff_s
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
        """Run one call: cache, then network with retries, then JSON validation with re-asks."""
        for attempt in range(self._resamples + 1):
            seed = request.seed + attempt * RESAMPLE_SEED_STRIDE
            body = self._body(request, seed)
            response, cached = await self._fetch(body)
            try:
                return self._result(request, response, cached)
            except _InvalidOutput as exc:
                last = exc
                self.stats.resamples += 1
        self.stats.failures += 1
        raise CallError(
            "invalid_output",
            f"{self.role}: unparseable output after {self._resamples + 1} tries: {last}",
        )

    def _body(self, request: ChatRequest, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": r, "content": c} for r, c in request.messages],
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "n": request.n,
            "seed": seed,
        }
        if request.response_model is not None:
            body["response_format"] = self._response_format(request.response_model)
        if request.top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = request.top_logprobs
        return body

    def _response_format(self, model: type[BaseModel]) -> dict[str, Any]:
        return _response_format(model, self._hints)

    async def _fetch(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        # One slot from the cache look-up through the first attempt: a stage that starts N calls
        # at once does their CPU work as slots free up, not all of it first while replies wait.
        async with self._limit:
            key = cache_key(body)
            if self._cache is not None and (hit := self._cache.get(key)) is not None:
                self.stats.cache_hits += 1
                return hit, True
            try:
                self.stats.calls += 1
                response: dict[str, Any] | None = await self._post(body)
                failure = None
            except _Transient as exc:
                response, failure = None, exc
        if failure is not None:
            response = await self._retry(body, failure)
        assert response is not None
        if self._cache is not None:  # committed before the reply is used (kill-anywhere)
            await self._cache.aput(key, response)
        killpoint(f"llm:response:{self.role}")
        return response, False

    async def _retry(self, body: dict[str, Any], failure: _Transient) -> dict[str, Any]:
        """Attempts 2 … max_retries + 1, each after a back-off, each in a slot of its own."""
        for attempt in range(1, self._retries + 1):
            self.stats.retries += 1
            if failure.kind == "connection" and self._revive is not None:
                self._revive()  # blocking: no call to this server can succeed meanwhile
            backoff = self._backoff * 2 ** (attempt - 1) * (1 + random.random())
            await asyncio.sleep(backoff if failure.retry_after is None else failure.retry_after)
            try:
                async with self._limit:
                    self.stats.calls += 1
                    return await self._post(body)
            except _Transient as exc:
                failure = exc
        self.stats.failures += 1
        raise CallError(
            failure.kind, f"{self.role}: {failure} after {self._retries + 1} tries"
        ) from None

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = self._url
        try:
            session = self._http()
            proxy, proxy_auth = self._proxy
            async with session.post(
                url, data=_encode(body), proxy=proxy, proxy_auth=proxy_auth
            ) as resp:
                code, headers, raw = resp.status, resp.headers, await resp.read()
        except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            raise _Transient("timeout", f"timeout calling {url}") from exc
        except aiohttp.ClientError as exc:  # refused, reset, truncated body
            raise _Transient(
                "connection", f"connection to {url} failed ({type(exc).__name__})"
            ) from exc
        _log.debug('HTTP Request: POST %s "%d"', url, code)
        if code != 200:
            self._raise_for_status(code, headers, raw, url)
        try:
            data = _decode(raw)
            data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Transient("bad_body", f"malformed response body from {url}") from exc
        return data

    def _raise_for_status(
        self, code: int, headers: Mapping[str, str], raw: bytes, url: str
    ) -> None:
        detail = _error_detail(raw)
        if code in RETRYABLE_STATUS:
            raise _Transient(
                f"http_{code}", f"HTTP {code} from {url}: {detail}", _retry_after(headers)
            )
        if code in (401, 403):
            raise BackendError(
                f"{self.role}: {url} refused the API key (HTTP {code}); "
                f"set AUTODATA_MODELS__{self.role.upper()}__API_KEY to a valid key"
            )
        if code == 404 and not self.base_url.endswith("/v1"):  # the usual cause: a missing /v1
            raise BackendError(
                f"{self.role}: {url} was not found (HTTP 404: {detail}); OpenAI-compatible servers "
                f"answer under /v1: set models.{self.role}.base_url to {self.base_url}/v1 "
                f"(or AUTODATA_MODELS__{self.role.upper()}__BASE_URL)"
            )
        if code == 404:
            raise BackendError(
                f"{self.role}: {url} has no model '{self.model}' (HTTP 404: {detail}); "
                f"set models.{self.role}.model in params.yaml to a model the server lists at /v1/models"
            )
        raise CallError(f"http_{code}", f"{self.role}: HTTP {code} from {url}: {detail}")

    def _result(self, request: ChatRequest, response: dict[str, Any], cached: bool) -> ChatResult:
        choices = sorted(response["choices"], key=lambda c: c.get("index", 0))
        texts = [(c.get("message") or {}).get("content") or "" for c in choices]
        usage = response.get("usage") or {}
        result = ChatResult(
            texts=texts,
            top_logprobs=[_first_token_logprobs(c) for c in choices],
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            cached=cached,
            model=str(response.get("model") or self.model),
        )
        if not cached:  # before parsing: a rejected reply's tokens were spent too
            self.stats.tokens_in += result.tokens_in
            self.stats.tokens_out += result.tokens_out
        if request.response_model is not None:
            result.parsed = [_parse(request.response_model, t) for t in texts]
        return result


class _Transient(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class _InvalidOutput(Exception):
    pass


def _parse(model: type[BaseModel], text: str) -> BaseModel:
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _InvalidOutput(f"{where}: {first['msg']}" if where else first["msg"]) from None


def _first_token_logprobs(choice: dict[str, Any]) -> dict[str, float]:
    content = (choice.get("logprobs") or {}).get("content") or []
    if not content:
        return {}
    return {t["token"]: float(t["logprob"]) for t in content[0].get("top_logprobs") or []}


@functools.cache
def _response_format(model: type[BaseModel], hints: bool) -> dict[str, Any]:
    """The ``response_format`` for ``model``, built once per model (pydantic's schema generation
    costs ~0.3 ms a call). Shared between requests: never mutate it."""
    schema = model.model_json_schema()
    if hints:
        schema["x-guidance"] = GUIDANCE_HINTS
    return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema}}


def _decode(raw: bytes) -> Any:
    """orjson (~5× faster), or the stdlib for what orjson rejects (NaN, Infinity literals)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


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


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    # "nan" would make asyncio.sleep wait forever; negatives are meaningless
    return min(seconds, 60.0) if math.isfinite(seconds) and seconds >= 0 else None


def _error_detail(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    try:
        err = json.loads(text).get("error")
        message = err.get("message") if isinstance(err, dict) else err
        return str(message or text)[:200]
    except (ValueError, AttributeError):
        return text[:200]
