"""What an HTTP status means for a call: retry (after how long), or stop the run with the fix.

``Retry-After`` comes in two forms (RFC 9110 §10.2.3): delay-seconds (``"20"``) and an HTTP-date
(``"Wed, 21 Oct 2026 07:28:00 GMT"``); OpenAI and Azure also send ``retry-after-ms``.
A ``400``/``413``/``422`` is a request no retry can fix (context too long, a parameter the
server does not support): :func:`rejection_hint` names the setting that causes it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from autodata.errors import BackendError, CallError

RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504})
REJECTED = frozenset({400, 413, 422})  # the request itself is wrong: fatal, with the setting


class Transient(Exception):
    """A failed attempt worth retrying: ``kind`` names the cause (``http_429``, ``timeout``,
    ``connection``, ``bad_reply``, …); ``retry_after`` the server's requested wait in seconds."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def raise_for(
    code: int, headers: Mapping[str, str], raw: bytes, url: str, *, role: str, model: str
) -> None:
    """Raise for a non-200 answer: :class:`Transient` (retry), :class:`BackendError` (stop the
    run: key, URL, model or request is wrong — the message names the setting), else
    :class:`CallError`."""
    detail = error_detail(raw)
    if code in RETRYABLE:
        raise Transient(f"http_{code}", f"HTTP {code} from {url}: {detail}", retry_after(headers))
    env = f"AUTODATA_MODELS__{role.upper()}"
    base_url = url.removesuffix("/chat/completions")
    if code in (401, 403):
        raise BackendError(
            f"{role}: {url} refused the API key (HTTP {code}); set {env}__API_KEY to a valid key"
        )
    if code == 404 and not base_url.endswith("/v1"):  # the usual cause: a missing /v1
        raise BackendError(
            f"{role}: {url} was not found (HTTP 404: {detail}); OpenAI-compatible servers "
            f"answer under /v1: set models.{role}.base_url to {base_url}/v1 (or {env}__BASE_URL)"
        )
    if code == 404:
        raise BackendError(
            f"{role}: {url} has no model '{model}' (HTTP 404: {detail}); "
            f"set models.{role}.model in params.yaml to a model the server lists at /v1/models"
        )
    if code in REJECTED:
        raise BackendError(
            f"{role}: {url} rejected the request for model '{model}' (HTTP {code}: {detail}); "
            f"{rejection_hint(role, detail)}"
        )
    raise CallError(f"http_{code}", f"{role}: HTTP {code} from {url}: {detail}")


def not_json(raw: bytes) -> str:
    """Why a 200 body is unusable, with its start (an HTML page is named as such)."""
    head = " ".join(raw[:80].decode("utf-8", errors="replace").split())
    if head.lower().startswith(("<!doctype", "<html")):
        return f"an HTML page, not JSON ({head[:60]!r}); is base_url an OpenAI-compatible API?"
    return f"not JSON ({head[:60]!r})"


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP-date).

    None when absent or unreadable; never negative or non-finite (``nan`` would make
    ``asyncio.sleep`` wait forever). ``now``: a Unix time, for tests.
    """
    millis = _number(headers.get("retry-after-ms", ""))
    if millis is not None:
        return millis / 1000.0
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def error_detail(raw: bytes) -> str:
    """The server's error message (OpenAI's ``{"error": {"message": …}}`` or the body), ≤200 chars."""
    text = raw.decode("utf-8", errors="replace")
    try:
        err = json.loads(text).get("error")
        message = err.get("message") if isinstance(err, dict) else err
        return " ".join(str(message or text).split())[:200]
    except (ValueError, AttributeError):
        return " ".join(text.split())[:200]


def rejection_hint(role: str, detail: str) -> str:
    """The fix for a request the server rejected (HTTP 400/413/422), from its message."""
    low = detail.lower()
    if any(w in low for w in ("context length", "context window", "too long", "maximum context", "max_model_len", "too many tokens")):  # fmt: skip
        return (
            f"the prompt plus models.{role}.max_tokens exceed the model's context: lower "
            f"models.{role}.max_tokens or ingest.max_section_chars, or raise vllm.max_model_len "
            "(or the server's own limit)"
        )
    if any(w in low for w in ("json_schema", "response_format", "strict", "schema")):
        return f"the server rejects the JSON schema: set models.{role}.strict_json: false"
    if any(w in low for w in ("max_tokens", "max_completion_tokens", "temperature", "logprobs")):
        return (
            f"an OpenAI reasoning model? set models.{role}.reasoning_api: true "
            "(sends max_completion_tokens, no temperature/top_p/logprobs)"
        )
    if any(w in low for w in ("chat_template_kwargs", "enable_thinking", "reasoning_effort")):
        return f"the server does not take this option: set models.{role}.thinking: auto and remove reasoning_effort"
    return f"check models.{role} in params.yaml (and models.{role}.extra_body) against the server's API"
