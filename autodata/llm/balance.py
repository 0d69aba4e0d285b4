"""One role, several endpoints: least-outstanding-requests balancing with per-endpoint health.

A role whose ``base_url`` lists N URLs gets a :class:`BalancedClient` over N
:class:`OpenAIChatClient` (one per endpoint: same model, settings and cache). Each call goes to
the live endpoint with the fewest calls in flight. A call that fails on an endpoint with a
connection error or a timeout (after that endpoint's own retries) marks it down and moves to
another live endpoint; a down endpoint is probed (``GET {base_url}/models``) every
``cool_off_s`` and takes calls again once it answers. When every endpoint is down a call is
tried once more as with a single URL, and its :class:`CallError` comes out. The per-call cache
key never names the endpoint (``cache.py``), so a reply is found whichever endpoint gave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from autodata.errors import CallError
from autodata.llm.client import CallStats, ChatRequest, ChatResult, OpenAIChatClient

FAILOVER = frozenset({"connection", "timeout"})  # what says "this endpoint is down"
COOL_OFF_S = 10.0  # a down endpoint is probed again this long after it failed, and then as often
PROBE_TIMEOUT_S = 5.0
_log = logging.getLogger(__name__)


@dataclass
class EndpointStats:
    """Per endpoint: calls sent there, answered by it (not from the cache), moved away after
    failing there, times marked down, and whether it takes calls now."""

    routed: int = 0
    answered: int = 0
    moved_away: int = 0
    marked_down: int = 0
    up: bool = True


@dataclass
class BalancedStats(CallStats):
    """The role's counters over all its endpoints (one :class:`CallStats` they all count into);
    a call moved to another endpoint counts as a retry there, not as a failure."""

    endpoints: dict[str, EndpointStats] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return super().as_dict() | {"endpoints": self.endpoint_dicts()}

    def endpoint_dicts(self) -> dict[str, dict[str, Any]]:
        return {url: asdict(counts) for url, counts in self.endpoints.items()}


@dataclass(eq=False)
class _Endpoint:
    client: OpenAIChatClient
    counts: EndpointStats
    order: int
    outstanding: int = 0

    @property
    def url(self) -> str:
        return self.client.base_url


class BalancedClient:
    """A :class:`ChatClient` over several endpoints serving the same model."""

    def __init__(
        self,
        clients: Sequence[OpenAIChatClient],
        *,
        role: str,
        api_key: str | None = None,
        cool_off_s: float = COOL_OFF_S,
        announce: Callable[[str], None] = _log.warning,
    ) -> None:
        self.model = clients[0].model
        self.role = role
        self.max_concurrency = sum(c.max_concurrency for c in clients)
        self._stats = BalancedStats()
        self.stats: CallStats = self._stats  # ChatClient's type; as_dict() adds the endpoints
        self._endpoints = [_Endpoint(c, EndpointStats(), i) for i, c in enumerate(clients)]
        for endpoint in self._endpoints:
            endpoint.client.stats = self._stats  # every endpoint counts into the role's stats
            self._stats.endpoints[endpoint.url] = endpoint.counts
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._cool_off = cool_off_s
        self._announce = announce
        self._turn = itertools.count()  # ties go round the endpoints, not always to the first
        self._watchers: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"BalancedClient(role={self.role!r}, model={self.model!r}, urls={self.urls!r})"

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self._endpoints]

    @property
    def endpoint_stats(self) -> dict[str, dict[str, Any]]:
        """Per endpoint URL: routed, answered, moved_away, marked_down, up."""
        return self._stats.endpoint_dicts()

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Send the call to the least busy live endpoint; move it on if that one is down."""
        endpoint = self._pick(()) or self._least_busy(self._endpoints)  # all down: try anyway
        tried = [endpoint]
        while True:
            try:
                return await self._on(endpoint, request)
            except CallError as exc:
                if exc.kind not in FAILOVER:
                    raise
                self._down(endpoint, f"{exc.kind}, after its retries")
                following = self._pick(tried)
                if following is None:
                    raise CallError(exc.kind, f"{exc}; {self._all_down()}") from None
                endpoint.counts.moved_away += 1
                self.stats.failures -= 1  # not lost: retried on the next endpoint
                self.stats.retries += 1
                endpoint = following
                tried.append(endpoint)

    async def _on(self, endpoint: _Endpoint, request: ChatRequest) -> ChatResult:
        endpoint.outstanding += 1
        endpoint.counts.routed += 1
        try:
            result = await endpoint.client.chat(request)
        finally:
            endpoint.outstanding -= 1
        if not result.cached:
            endpoint.counts.answered += 1
            self._up(endpoint)
        return result

    def _pick(self, tried: Sequence[_Endpoint]) -> _Endpoint | None:
        live = [e for e in self._endpoints if e.counts.up and e not in tried]
        return self._least_busy(live) if live else None

    def _least_busy(self, endpoints: Sequence[_Endpoint]) -> _Endpoint:
        turn, n = next(self._turn), len(self._endpoints)
        return min(endpoints, key=lambda e: (e.outstanding, (e.order - turn) % n))

    def mark_down(self, url: str, reason: str) -> None:
        """Take ``url`` out of rotation until a probe finds it healthy (used by preflight)."""
        for endpoint in self._endpoints:
            if endpoint.url == url.rstrip("/"):
                self._down(endpoint, reason, quiet=True)

    def _down(self, endpoint: _Endpoint, reason: object, *, quiet: bool = False) -> None:
        if not endpoint.counts.up:
            return
        endpoint.counts.up = False
        endpoint.counts.marked_down += 1
        if not quiet:
            live = sum(e.counts.up for e in self._endpoints)
            self._announce(
                f"{self.role}: endpoint {endpoint.url} is down ({reason}); its calls go to the "
                f"other {live} live endpoint(s), and it is probed every {self._cool_off:g} s"
            )
        watcher = asyncio.get_running_loop().create_task(self._watch(endpoint))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    def _up(self, endpoint: _Endpoint) -> None:
        if not endpoint.counts.up:
            endpoint.counts.up = True
            self._announce(f"{self.role}: endpoint {endpoint.url} is back; it takes calls again")

    async def _watch(self, endpoint: _Endpoint) -> None:
        """Probe a down endpoint every ``cool_off_s`` until it answers (or a call succeeds)."""
        while not endpoint.counts.up:
            await asyncio.sleep(self._cool_off)
            if not endpoint.counts.up and await self._healthy(endpoint.url):
                self._up(endpoint)

    async def _healthy(self, url: str) -> bool:
        """Any HTTP answer below 500 to ``GET {url}/models``: the server is there again."""
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as http:
                resp = await http.get(f"{url}/models", headers=self._headers)
        except httpx.TransportError:
            return False
        return resp.status_code < 500

    def _all_down(self) -> str:
        return (
            f"all {len(self._endpoints)} endpoints of {self.role} are down ({', '.join(self.urls)});"
            f" start the servers or fix models.{self.role}.base_url"
        )

    async def aclose(self) -> None:
        for watcher in list(self._watchers):
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for endpoint in self._endpoints:
            await endpoint.client.aclose()
