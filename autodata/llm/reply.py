"""Reply normalisation: the one place a server's chat.completion becomes something usable.

Real servers answer in more shapes than the OpenAI reference: reasoning models put a
``<think>…</think>`` block in ``content`` (vLLM/SGLang without a reasoning parser), or the
reasoning in ``reasoning_content`` / ``reasoning`` (vLLM, SGLang, OpenRouter with a parser);
Mistral-style servers send ``content`` as a list of typed parts, some of them ``thinking``;
models behind servers that ignore ``response_format`` wrap JSON in a markdown fence; proxies
answer ``200`` with an HTML page, empty content or ``usage`` fields of the wrong type.

:func:`normalise` turns any of these into :class:`Reply` — the answer text (never containing
reasoning), the reasoning apart, ``finish_reason`` and usage — or raises :class:`BadReply`
naming what was wrong. The client calls it on every reply, fresh or cached, *before* the reply
is cached, parsed or graded, so a malformed ``200`` is retried and never stored as a success.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
REASONING_FIELDS = ("reasoning_content", "reasoning")  # vLLM/SGLang, OpenRouter/newer vLLM
TEXT_PARTS = frozenset({"text", "output_text"})
THINKING_PARTS = frozenset({"thinking", "reasoning", "reasoning_content"})
_FENCE = re.compile(r"\A\s*```[\w+-]*[ \t]*\n(?P<body>.*?)\n?```\s*\Z", re.DOTALL)


class InvalidOutput(Exception):
    """A reply's text is not JSON, or JSON that breaks the requested schema."""


class BadReply(Exception):
    """A ``200`` whose body is not a usable chat.completion; ``str()`` says what was wrong."""


@dataclass(frozen=True)
class Choice:
    """One normalised choice.

    ``text`` is the answer with reasoning removed (and, for JSON replies, one enclosing fence
    removed); ``reasoning`` is what was removed ('' if none); ``finish_reason`` as the server
    sent it (``stop``, ``length``, ``content_filter``, …; '' when absent).
    """

    text: str
    reasoning: str = ""
    finish_reason: str = ""
    top_logprobs: dict[str, float] = field(default_factory=dict)  # first answer token

    @property
    def truncated(self) -> bool:
        """True when the server stopped at the token budget (``max_tokens``)."""
        return self.finish_reason == "length"


@dataclass(frozen=True)
class Reply:
    """A normalised chat.completion: choices in ``index`` order, usage in tokens."""

    choices: list[Choice]
    tokens_in: int = 0
    tokens_out: int = 0
    model: str = ""


def normalise(data: Any, *, json_expected: bool = False) -> Reply:
    """``data`` (a decoded response body) → :class:`Reply`, or raise :class:`BadReply`.

    ``json_expected``: the request asked for JSON, so one enclosing markdown fence is removed.
    """
    if not isinstance(data, dict):
        raise BadReply(f"not a chat.completion: the body is a JSON {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        keys = ", ".join(sorted(str(k) for k in data)[:6]) or "nothing"
        raise BadReply(f"not a chat.completion: no 'choices' list (keys: {keys})")
    ordered = sorted(choices, key=_index)
    return Reply(
        choices=[_choice(c, i, json_expected) for i, c in enumerate(ordered)],
        tokens_in=_usage(data, "prompt_tokens"),
        tokens_out=_usage(data, "completion_tokens"),
        model=str(data.get("model") or ""),
    )


def _index(choice: Any) -> int:
    index = choice.get("index", 0) if isinstance(choice, dict) else 0
    return index if isinstance(index, int) else 0


def _choice(raw: Any, i: int, json_expected: bool) -> Choice:
    message = raw.get("message") if isinstance(raw, dict) else None
    if not isinstance(message, dict):
        raise BadReply(f"choices[{i}] has no 'message' object")
    text, reasoning = _content(message.get("content"), i)
    for name in REASONING_FIELDS:
        extra = message.get(name)
        if isinstance(extra, str) and extra.strip():
            reasoning = _join(reasoning, extra)
    text, thought = split_think(text)
    reasoning = _join(reasoning, thought)
    if json_expected:
        text = strip_fence(text)
    finish = raw.get("finish_reason")
    logprobs = {} if reasoning else _first_token_logprobs(raw)  # a think block's first token
    return Choice(text, reasoning, finish if isinstance(finish, str) else "", logprobs)


def _content(content: Any, i: int) -> tuple[str, str]:
    """(text, reasoning) from a ``content`` that is a string, null, or a list of typed parts."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        raise BadReply(f"choices[{i}].message.content is a {type(content).__name__}, not text")
    texts: list[str] = []
    thoughts: list[str] = []
    for part in content:
        kind = (
            part.get("type")
            if isinstance(part, dict)
            else ("text" if isinstance(part, str) else None)
        )
        if kind in TEXT_PARTS:
            texts.append(part if isinstance(part, str) else _part_text(part.get("text"), i))
        elif kind in THINKING_PARTS:
            thoughts.append(_part_text(part.get(kind, part.get("text")), i))
        else:
            raise BadReply(f"choices[{i}].message.content has a part of unknown type {kind!r}")
    return "".join(texts), "\n".join(t for t in thoughts if t)


def _part_text(value: Any, i: int) -> str:
    """A part's text: a string, or (Mistral's thinking parts) a list of text parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_part_text(v.get("text") if isinstance(v, dict) else v, i) for v in value)
    raise BadReply(f"choices[{i}].message.content has a part whose text is not text")


def split_think(text: str) -> tuple[str, str]:
    """(answer, reasoning) of a reply that may open with a ``<think>`` block.

    Handles a closed block, a block whose opening tag was in the prompt (DeepSeek-R1/Qwen3
    templates: only ``</think>`` appears) and an unclosed block (the budget ran out while
    thinking: everything is reasoning, the answer is '').
    """
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        body = stripped[len(THINK_OPEN) :]
        thought, closed, answer = body.partition(THINK_CLOSE)
        return (answer.lstrip(), thought.strip()) if closed else ("", body.strip())
    if THINK_CLOSE in text and THINK_OPEN not in text:
        thought, _, answer = text.partition(THINK_CLOSE)
        return answer.lstrip(), thought.strip()
    return text, ""


def strip_fence(text: str) -> str:
    """The body of exactly one markdown code fence enclosing the whole text, else ``text``."""
    match = _FENCE.match(text)
    if match is None or "```" in match.group("body"):
        return text
    return match.group("body")


def _join(first: str, second: str) -> str:
    return "\n".join(t for t in (first, second) if t)


def _usage(data: dict[str, Any], key: str) -> int:
    usage = data.get("usage")
    if usage is None:
        return 0
    if not isinstance(usage, dict):
        raise BadReply(f"'usage' is a {type(usage).__name__}, not an object")
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadReply(f"usage.{key} is {value!r}, not a token count")
    return int(value)


def _first_token_logprobs(choice: dict[str, Any]) -> dict[str, float]:
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return {}
    tops = content[0].get("top_logprobs") or []
    try:
        return {str(t["token"]): float(t["logprob"]) for t in tops}
    except (KeyError, TypeError, ValueError) as exc:
        raise BadReply(f"logprobs are malformed ({type(exc).__name__})") from None


def decode(raw: bytes) -> Any:
    """orjson (~5× faster), or the stdlib for what orjson rejects (NaN, Infinity literals)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def parse_json(model: type[BaseModel], text: str) -> BaseModel:
    """Validate ``text`` against ``model``; :class:`InvalidOutput` says whether the JSON itself
    was broken or it broke the schema, and where."""
    try:
        data = decode(text.encode())
    except ValueError as exc:
        raise InvalidOutput(f"not valid JSON ({exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidOutput(f"schema violation at {where or 'top level'}: {first['msg']}") from None
