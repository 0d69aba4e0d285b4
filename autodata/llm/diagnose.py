"""What ``autodata models check`` says about a server's raw reply, beyond OK/FAIL.

The client normalises every reply (``reply.py``), which hides how the server really answered;
these notes name it, so a user knows *why* a role is slow, costly or fragile before a run:
thinking on, JSON in a fence (``response_format`` ignored), cut at ``max_tokens``, content as a
list of parts or not text at all.
"""

from __future__ import annotations

from typing import Any

from autodata.llm.reply import THINK_CLOSE, Reply, strip_fence


def reply_notes(raw: dict[str, Any], reply: Reply, *, json_asked: bool) -> list[str]:
    """Findings about one raw chat.completion ``raw`` (and its normalised ``reply``)."""
    message = (raw.get("choices") or [{}])[0].get("message") or {}
    content = message.get("content")
    choice = reply.choices[0]
    notes: list[str] = []
    if (isinstance(content, str) and THINK_CLOSE in content) or (
        not isinstance(content, list) and choice.reasoning and not _field(message)
    ):
        notes.append("thinking on: a <think> block in content (autodata separates it; for a judge set thinking: off or raise max_tokens)")  # fmt: skip
    elif _field(message):
        notes.append(f"thinking on: reasoning in '{_field(message)}' (kept apart, never graded)")
    if isinstance(content, list):
        notes.append("content is a list of typed parts (joined by autodata)")
    elif content is not None and not isinstance(content, str):
        notes.append(f"content is a {type(content).__name__}, not text")
    if (
        json_asked
        and isinstance(content, str)
        and strip_fence(content.split(THINK_CLOSE)[-1].strip())
        != content.split(THINK_CLOSE)[-1].strip()
    ):
        notes.append("JSON in a markdown fence: the server ignores response_format (no guided decoding?)")  # fmt: skip
    if choice.truncated:
        notes.append("truncated: finish_reason 'length' (raise max_tokens)")
    return notes


def _field(message: dict[str, Any]) -> str:
    for name in ("reasoning_content", "reasoning"):
        if isinstance(message.get(name), str) and message[name].strip():
            return name
    return ""
