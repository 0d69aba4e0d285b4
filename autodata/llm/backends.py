"""Backends chosen by name: ``openai`` (external URLs) or ``vllm`` (a managed local server).

Both end in the same :class:`OpenAIChatClient`; roles naming the same model share one server.
A role with several URLs gets one client per URL behind a :class:`BalancedClient` (``balance.py``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic import BaseModel, Field

from autodata.errors import AutodataError
from autodata.llm.balance import BalancedClient
from autodata.llm.cache import CallCache
from autodata.llm.client import ChatRequest, OpenAIChatClient, WireOptions
from autodata.llm.diagnose import reply_notes
from autodata.llm.preflight import RoleClient, preflight
from autodata.llm.reply import normalise
from autodata.llm.vllm_server import ServerRegistry
from autodata.settings import ROLES, RoleModel, Settings


async def _endpoints(
    spec: RoleModel, registry: ServerRegistry, announce: Callable[[str], None]
) -> tuple[list[str], str]:
    if spec.backend == "openai":
        assert spec.base_urls  # enforced by RoleModel
        return spec.base_urls, spec.model
    if spec.model not in registry.servers():
        announce(f"starting a vLLM server for {spec.model} (30-120 s on CPU) ...")
    # Deliberately blocking, on the flow's main thread: the server's parent-death signal and the
    # registry's SIGINT/SIGTERM handlers only apply when started from the main thread.
    base_url, served = registry.url_for(spec.model)
    return [base_url], served


def wire_options(spec: RoleModel) -> WireOptions:
    """How the role's requests are shaped (``wire.py``), from its settings."""
    return WireOptions(
        thinking=spec.thinking,
        reasoning_effort=spec.reasoning_effort,
        reasoning_api=spec.reasoning_api,
        strict_json=spec.strict_json,
        guidance_hints=spec.backend == "vllm" and spec.guided_json_hints,
        extra_body=dict(spec.extra_body),
    )


async def make_client(
    role: str,
    spec: RoleModel,
    registry: ServerRegistry,
    cache: CallCache | None,
    announce: Callable[[str], None] = lambda _: None,
) -> RoleClient:
    """Reach (or start) the role's server(s) and return its client: one per URL, balanced when
    there are several (``max_concurrency`` applies per endpoint)."""
    base_urls, served = await _endpoints(spec, registry, announce)
    api_key = spec.api_key.get_secret_value() if spec.api_key else None

    def revive() -> None:  # a managed server that died is restarted once, then calls go on
        if registry.revive(spec.model):
            announce(f"the vLLM server for {spec.model} died; restarted it (once per run)")

    clients = [
        OpenAIChatClient(
            base_url,
            served,
            api_key=api_key,
            max_concurrency=spec.max_concurrency,
            timeout_s=spec.timeout_s,
            max_retries=spec.max_retries,
            max_resamples=spec.max_resamples,
            cache=cache,
            options=wire_options(spec),
            rate_limit_wait_s=spec.rate_limit_wait_s,
            role=role,
            revive=revive if spec.backend == "vllm" else None,
        )
        for base_url in base_urls
    ]
    if len(clients) == 1:
        return clients[0]
    return BalancedClient(clients, role=role, api_key=api_key, announce=announce)


@asynccontextmanager
async def open_clients(
    settings: Settings,
    roles: Iterable[str] = ROLES,
    *,
    use_cache: bool = True,
    announce: Callable[[str], None] = lambda _: None,
    probe: bool = True,
) -> AsyncIterator[dict[str, RoleClient]]:
    """Clients for ``roles``; managed servers are started once and always stopped on exit.

    ``probe``: first check every endpoint (reachable, key, model), raising BackendError; one
    dead endpoint of several is announced and left out until it recovers."""
    cache = CallCache(settings.paths.cache) if use_cache else None
    clients: dict[str, RoleClient] = {}
    with ServerRegistry(settings.vllm, settings.paths) as registry:
        try:
            for role in roles:
                spec = settings.models.role(role)
                clients[role] = await make_client(role, spec, registry, cache, announce)
            if probe:
                await preflight(settings, clients, announce)
            yield clients
        finally:
            for client in clients.values():
                await client.aclose()
            if cache is not None:
                cache.close()


class _Ping(BaseModel):
    ok: bool
    word: str = Field(max_length=20)


@dataclass
class RoleCheck:
    """Result of ``autodata models check`` for one role."""

    role: str
    backend: str
    model: str
    latency_s: float | None
    ok: bool
    detail: str


async def check_role(role: str, client: RoleClient, backend: str) -> RoleCheck:
    """One JSON-schema round trip, uncached, timed."""
    request = ChatRequest.of(
        "Reply with JSON only.",
        'Return {"ok": true, "word": "hello"}.',
        temperature=0.0,
        max_tokens=32,
        response_model=_Ping,
    )
    start = time.perf_counter()
    try:
        result = await client.chat(request)
    except AutodataError as exc:
        return RoleCheck(role, backend, client.model, None, False, str(exc))
    latency = time.perf_counter() - start
    notes = reply_notes(result.raw, normalise(result.raw, json_expected=True), json_asked=True)
    detail = "; ".join([f"JSON ok: {result.texts[0][:60]}", *notes])
    return RoleCheck(role, backend, client.model, latency, True, detail)


async def check_models(
    settings: Settings, announce: Callable[[str], None] = lambda _: None
) -> list[RoleCheck]:
    """Start or reach every configured backend and check each role once."""
    # no preflight: a failing role becomes a row of the table, not an exception
    async with open_clients(settings, use_cache=False, announce=announce, probe=False) as clients:
        return [
            await check_role(role, client, settings.models.role(role).backend)
            for role, client in clients.items()
        ]
