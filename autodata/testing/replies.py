"""What the scripted server answers: ``Reply``, its OpenAI-shaped bodies, and seeded faults.

``render`` turns a ``Reply`` into the bytes of a chat.completion or an OpenAI-style error;
``faulty`` wraps a responder so that a seeded ~``rate`` of requests get faults instead.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

Fault = Literal["reset", "truncate", "garbage"]
Responder = Callable[[dict[str, Any]], "Reply | str | dict[str, Any]"]

FAULT_KINDS = ("500", "503", "429", "timeout", "reset", "truncate", "garbage")
_GARBAGE = b"<!doctype html><h1>502 Bad Gateway</h1>\x00{not json"
_ids = itertools.count(1)
_TEXT: Any = object()  # "not given": content from ``text``, usage estimated


@dataclass
class Reply:
    """One scripted answer. ``text=None`` means "ok"; a list gives one text per choice."""

    text: str | list[str] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    fault: Fault | None = None
    logprobs: list[dict[str, float]] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # How real servers differ from the reference (each is what some server sends):
    finish_reason: str | None = "stop"  # "length": cut at max_tokens
    reasoning: str | None = None  # a reasoning parser's output, in message[reasoning_field]
    reasoning_field: str = "reasoning_content"  # vLLM/SGLang; newer vLLM/OpenRouter: "reasoning"
    content: Any = _TEXT  # raw message.content instead of text: a list of parts, None, 42 …
    usage: Any = _TEXT  # raw usage object instead of the estimated counts


@dataclass
class WireResponse:
    """What the handler writes: a full HTTP response, possibly delayed or broken."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    fault: Fault | None = None


def as_reply(value: Reply | str | dict[str, Any]) -> Reply:
    """Coerce a responder's result: str → text, dict → JSON text, Reply unchanged."""
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(text=value)
    if isinstance(value, dict):
        return Reply(text=json.dumps(value))
    raise TypeError(f"a responder must return Reply, str or dict, not {type(value).__name__}")


# -- response bodies -------------------------------------------------------------------------


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":")).encode()


def error_response(status: int, message: str, code: str | None = None) -> WireResponse:
    """An OpenAI-style error body: {"error": {message, type, param, code}}."""
    if status == 429:
        kind = "rate_limit_exceeded"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    err = {"message": message, "type": kind, "param": None, "code": code or str(status)}
    return WireResponse(status, dumps({"error": err}))


def render(reply: Reply, body: dict[str, Any], model: str) -> WireResponse:
    """Turn a Reply into a response: garbage, an error body, or a chat.completion."""
    if reply.fault == "garbage":
        out = WireResponse(200, _GARBAGE)
    elif reply.status >= 400:
        text = reply.text if isinstance(reply.text, str) else f"scripted HTTP {reply.status}"
        out = error_response(reply.status, text)
    else:
        out = WireResponse(reply.status, dumps(_completion(reply, body, model)))
    out.headers, out.delay_s, out.fault = dict(reply.headers), reply.delay_s, reply.fault
    return out


def _completion(reply: Reply, body: dict[str, Any], model: str) -> dict[str, Any]:
    texts = _choice_texts(reply.text, int(body.get("n") or 1))
    choices = [
        {
            "index": i,
            "message": _message(reply, text),
            "finish_reason": reply.finish_reason,
            "logprobs": _logprobs(reply.logprobs, i),
        }
        for i, text in enumerate(texts)
    ]
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = _estimate_tokens(_prompt_chars(body))
    completion = reply.completion_tokens
    if completion is None:
        completion = _estimate_tokens(sum(len(t) for t in texts))
    usage: Any = {"prompt_tokens": prompt, "completion_tokens": completion}
    usage["total_tokens"] = prompt + completion
    if reply.usage is not _TEXT:
        usage = reply.usage
    return {
        "id": f"chatcmpl-scripted-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
    }


def _message(reply: Reply, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reply.content is not _TEXT:
        message["content"] = reply.content
    if reply.reasoning is not None:
        message[reply.reasoning_field] = reply.reasoning
    return message


def _choice_texts(text: str | list[str] | None, n: int) -> list[str]:
    if text is None:
        text = "ok"
    if isinstance(text, str):
        return [text] * max(n, 1)
    return list(text)


def _logprobs(tops: list[dict[str, float]] | None, i: int) -> dict[str, Any] | None:
    """OpenAI shape: {"content": [{token, logprob, bytes, top_logprobs: [...]}]} (first token)."""
    if not tops:
        return None
    top = tops[min(i, len(tops) - 1)]
    ranked = sorted(top.items(), key=lambda kv: kv[1], reverse=True)
    entries = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked]
    first = entries[0] if entries else {"token": "", "logprob": 0.0, "bytes": []}
    return {"content": [{**first, "top_logprobs": entries}]}


def _prompt_chars(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else message
        total += len(content) if isinstance(content, str) else len(json.dumps(content))
    return total


def _estimate_tokens(chars: int) -> int:
    return max(1, chars // 4)


# -- seeded fault injection ------------------------------------------------------------------


class FaultInjector:
    """A responder that replaces ~``rate`` of replies with faults, decided per request index.

    Request ``i`` gets ``kind_for(i)``, drawn from ``random.Random(f"{seed}:{i}")``: the same
    seed gives the same fault sequence whatever the threads' timing. ``injected`` lists the
    kinds used so far (None = passed through).
    """

    def __init__(
        self,
        responder: Responder | None,
        rate: float,
        seed: int,
        kinds: Sequence[str] = FAULT_KINDS,
        timeout_delay_s: float = 5.0,
    ) -> None:
        unknown = [k for k in kinds if not (k.isdigit() or k in FAULT_KINDS)]
        if unknown or not kinds or not 0.0 <= rate <= 1.0:
            raise ValueError(f"faulty(): rate must be in [0, 1] and kinds from {FAULT_KINDS}")
        self.responder = responder
        self.rate, self.seed, self.kinds = rate, seed, tuple(kinds)
        self.timeout_delay_s = timeout_delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def kind_for(self, index: int) -> str | None:
        """The fault for the ``index``-th request (0-based), or None."""
        rng = random.Random(f"{self.seed}:{index}")
        return rng.choice(self.kinds) if rng.random() < self.rate else None

    @property
    def injected(self) -> list[str | None]:
        """The fault kind of every request answered so far, in arrival order."""
        return [self.kind_for(i) for i in range(self.calls)]

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            index, self.calls = self.calls, self.calls + 1
        kind = self.kind_for(index)
        if kind is None or kind == "timeout":
            reply = as_reply(self.responder(body)) if self.responder else Reply(text="ok")
            return replace(reply, delay_s=self.timeout_delay_s) if kind else reply
        if kind.isdigit():
            retry = {"Retry-After": "0"} if kind in ("429", "503") else {}
            return Reply(status=int(kind), text=f"injected fault {kind}", headers=retry)
        return Reply(fault=cast(Fault, kind))


def faulty(
    responder: Responder | None,
    rate: float,
    seed: int,
    kinds: Sequence[str] = FAULT_KINDS,
    *,
    timeout_delay_s: float = 5.0,
) -> FaultInjector:
    """Wrap ``responder`` to inject faults into ~``rate`` of requests, deterministically by seed.

    ``kinds``: HTTP status codes as strings ("500", "503", "429" — the last two with
    ``Retry-After: 0``), "timeout" (the real reply after ``timeout_delay_s``), "reset",
    "truncate" and "garbage" (see ``Reply.fault``).
    """
    return FaultInjector(responder, rate, seed, kinds, timeout_delay_s)
