"""Before the first call: is every role's endpoint reachable, does it take the key, does it
serve the model? Each of these would otherwise surface as hundreds of failed calls (rows marked
``infra_error``) and an empty dataset; here it is one :class:`BackendError` naming the role, the
URL and the fix. One ``GET {base_url}/models`` per distinct endpoint (vLLM, SGLang, llama.cpp
and OpenAI all serve it); a server without that route is given the benefit of the doubt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from autodata.errors import BackendError
from autodata.llm.client import OpenAIChatClient
from autodata.settings import Settings

TRIES = 3  # connection attempts, RETRY_S apart: a server that is just restarting gets a moment
RETRY_S = 1.0
TIMEOUT_S = 10.0


async def preflight(settings: Settings, clients: Mapping[str, OpenAIChatClient]) -> None:
    """Raise :class:`BackendError` for the first role whose endpoint cannot serve it."""
    seen: set[tuple[str, str, str | None]] = set()
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        for role, client in clients.items():
            secret = settings.models.role(role).api_key
            key = secret.get_secret_value() if secret else None
            if (client.base_url, client.model, key) not in seen:
                seen.add((client.base_url, client.model, key))
                await probe(http, role, client.base_url, client.model, key)


async def probe(
    http: httpx.AsyncClient, role: str, base_url: str, model: str, api_key: str | None
) -> None:
    """Check one endpoint: reachable, key accepted, ``model`` listed."""
    env = f"AUTODATA_MODELS__{role.upper()}"
    resp = await _get_models(http, role, base_url, api_key)
    if resp.status_code in (401, 403):
        raise BackendError(
            f"{role}: {base_url} refused the API key (HTTP {resp.status_code}); "
            f"set {env}__API_KEY to a valid key"
        )
    if resp.status_code != 200:
        return  # no model listing here: the calls themselves will tell
    try:
        served = sorted(str(card["id"]) for card in resp.json()["data"])
    except (ValueError, KeyError, TypeError):
        return
    if served and model not in served:
        raise BackendError(
            f"{role}: {base_url} has no model '{model}' (it serves: {', '.join(served[:5])}); "
            f"set models.{role}.model in params.yaml or {env}__MODEL to one of those"
        )


async def _get_models(
    http: httpx.AsyncClient, role: str, base_url: str, api_key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    for attempt in range(1, TRIES + 1):
        try:
            return await http.get(f"{base_url}/models", headers=headers)
        except httpx.TransportError as exc:
            if attempt == TRIES:
                raise BackendError(
                    f"{role}: cannot reach {base_url} ({type(exc).__name__} after {TRIES} tries); "
                    f"start the server or fix models.{role}.base_url (AUTODATA_MODELS__"
                    f"{role.upper()}__BASE_URL)"
                ) from None
            await asyncio.sleep(RETRY_S)
    raise AssertionError("unreachable")
