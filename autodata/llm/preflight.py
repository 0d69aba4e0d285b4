"""Before the first call: is every role's endpoint reachable, does it take the key, does it
serve the model? Each of these would otherwise surface as hundreds of failed calls (rows marked
``infra_error``) and an empty dataset; here it is one :class:`BackendError` naming the role, the
URL and the fix. One ``GET {base_url}/models`` per distinct endpoint (vLLM, SGLang, llama.cpp
and OpenAI all serve it); a server without that route is given the benefit of the doubt.
A role with several endpoints runs while one of them answers: each dead one is a warning line
and is left out until it recovers (``balance.py``); a wrong key or model on any is still fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import httpx

from autodata.errors import BackendError
from autodata.llm.balance import BalancedClient
from autodata.llm.client import OpenAIChatClient
from autodata.settings import Settings

TRIES = 3  # connection attempts, RETRY_S apart: a server that is just restarting gets a moment
RETRY_S = 1.0
TIMEOUT_S = 10.0
RoleClient = OpenAIChatClient | BalancedClient
_log = logging.getLogger(__name__)


class Unreachable(BackendError):
    """No HTTP answer from an endpoint; ``cause`` names the transport error."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


async def preflight(
    settings: Settings,
    clients: Mapping[str, RoleClient],
    announce: Callable[[str], None] = _log.warning,
) -> None:
    """Raise :class:`BackendError` for the first role whose endpoints cannot serve it."""
    verdicts: dict[tuple[str, str, str | None], Unreachable | None] = {}
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
        for role, client in clients.items():
            secret = settings.models.role(role).api_key
            key = secret.get_secret_value() if secret else None
            urls = client.urls if isinstance(client, BalancedClient) else [client.base_url]
            for url in urls:
                if (url, client.model, key) not in verdicts:
                    verdicts[url, client.model, key] = await _verdict(http, role, url, client, key)
            dead = {url: v for url in urls if (v := verdicts[url, client.model, key]) is not None}
            if dead and isinstance(client, BalancedClient):
                _leave_out(role, client, dead, announce)
            elif dead:
                raise next(iter(dead.values()))


async def _verdict(
    http: httpx.AsyncClient, role: str, url: str, client: RoleClient, key: str | None
) -> Unreachable | None:
    try:
        await probe(http, role, url, client.model, key)
    except Unreachable as exc:
        return exc
    return None


def _leave_out(
    role: str, client: BalancedClient, dead: dict[str, Unreachable], announce: Callable[[str], None]
) -> None:
    """Mark the dead endpoints down (with a warning each) or, if none is left, stop the run."""
    live = len(client.urls) - len(dead)
    if not live:
        raise BackendError(
            f"{role}: cannot reach any of its {len(dead)} endpoints ({', '.join(dead)}); start "
            f"the servers or fix models.{role}.base_url (AUTODATA_MODELS__{role.upper()}__BASE_URL)"
        )
    for url, exc in dead.items():
        announce(
            f"warning: {role}: cannot reach {url} ({exc.cause}); its calls go to the other "
            f"{live} endpoint(s) until it answers again"
        )
        client.mark_down(url, exc.cause)


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
    if _is_web_page(resp):
        raise BackendError(
            f"{role}: {base_url} answers with a web page, not an OpenAI-compatible API; set "
            f"models.{role}.base_url to the server's API root (it usually ends in /v1)"
        )
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
                cause = f"{type(exc).__name__} after {TRIES} tries"
                raise Unreachable(
                    f"{role}: cannot reach {base_url} ({cause}); "
                    f"start the server or fix models.{role}.base_url (AUTODATA_MODELS__"
                    f"{role.upper()}__BASE_URL)",
                    cause,
                ) from None
            await asyncio.sleep(RETRY_S)
    raise AssertionError("unreachable")


def _is_web_page(resp: httpx.Response) -> bool:
    """An HTML answer to ``GET /models``: a login page, a proxy's index, a docs site."""
    head = resp.content[:200].lstrip().lower()
    return "text/html" in resp.headers.get("content-type", "") or head.startswith(
        (b"<!doctype", b"<html")
    )
