"""Request bodies on the OpenAI chat wire format, shaped per role for the server behind it.

One request (:class:`ChatRequest`, defined here, sent by :mod:`autodata.llm.client`) becomes
one JSON body here, so the differences between servers live in one place:

- **thinking** (``on``/``off``) is sent as ``chat_template_kwargs.enable_thinking``, the switch
  Qwen3-style chat templates read on vLLM and SGLang; ``auto`` sends nothing.
- **OpenAI reasoning models** (o1/o3/o4/gpt-5 families) take ``max_completion_tokens`` and reject
  ``temperature``, ``top_p`` and ``logprobs``: with ``reasoning_api`` on (or detected from the
  model name) those are left out instead of failing every call with HTTP 400.
- **strict** JSON schemas (``json_schema.strict: true``) where the backend accepts them.
- ``extra_body`` is merged last, for anything a server needs that has no setting here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

GUIDANCE_HINTS = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "}
_OPENAI_REASONING = re.compile(r"^(?:openai/)?(?:o\d|gpt-5)", re.IGNORECASE)


@dataclass(frozen=True)
class ChatRequest:
    """One chat call. ``response_model`` asks for JSON that validates against that model.

    ``retry_max_tokens``: a text reply cut at ``max_tokens`` (``finish_reason == "length"``) is
    asked again once with this larger budget; 0 = never.
    """

    messages: tuple[tuple[str, str], ...]  # (role, content)
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    n: int = 1
    response_model: type[BaseModel] | None = None
    top_logprobs: int = 0  # >0: ask for the first tokens' top logprobs
    retry_max_tokens: int = 0

    @staticmethod
    def of(system: str, user: str, **kwargs: Any) -> ChatRequest:
        """A request with one system and one user message."""
        return ChatRequest(messages=(("system", system), ("user", user)), **kwargs)


@dataclass(frozen=True)
class WireOptions:
    """How one role's requests are shaped (from its ``models.<role>`` settings)."""

    thinking: Literal["auto", "on", "off"] = "auto"
    reasoning_effort: str | None = None
    reasoning_api: bool | None = None  # None: detect OpenAI reasoning models by name
    strict_json: bool = True
    guidance_hints: bool = False
    extra_body: dict[str, Any] = field(default_factory=dict)

    def is_reasoning_api(self, model: str) -> bool:
        """True when ``model`` takes OpenAI's reasoning-model parameters."""
        if self.reasoning_api is not None:
            return self.reasoning_api
        return _OPENAI_REASONING.match(model) is not None


def build_body(request: ChatRequest, model: str, seed: int, options: WireOptions) -> dict[str, Any]:
    """The JSON body for ``request`` sent to ``model`` with ``seed``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": r, "content": c} for r, c in request.messages],
        "n": request.n,
        "seed": seed,
    }
    reasoning_api = options.is_reasoning_api(model)
    if reasoning_api:
        body["max_completion_tokens"] = request.max_tokens
    else:
        body |= {"temperature": request.temperature, "top_p": request.top_p}
        body["max_tokens"] = request.max_tokens
    if request.response_model is not None:
        body["response_format"] = response_format(
            request.response_model, options.guidance_hints, options.strict_json
        )
    if request.top_logprobs and not reasoning_api:
        body["logprobs"] = True
        body["top_logprobs"] = request.top_logprobs
    if options.thinking != "auto":
        body["chat_template_kwargs"] = {"enable_thinking": options.thinking == "on"}
    if options.reasoning_effort:
        body["reasoning_effort"] = options.reasoning_effort
    return body | options.extra_body if options.extra_body else body


@functools.cache
def response_format(model: type[BaseModel], hints: bool, strict: bool) -> dict[str, Any]:
    """The ``response_format`` for ``model``, built once per model (pydantic's schema generation
    costs ~0.3 ms a call). Shared between requests: never mutate it."""
    schema = model.model_json_schema()
    if hints:
        schema["x-guidance"] = GUIDANCE_HINTS
    spec: dict[str, Any] = {"name": model.__name__, "schema": schema}
    if strict:
        spec["strict"] = True
    return {"type": "json_schema", "json_schema": spec}
