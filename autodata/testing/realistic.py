"""Server personalities: the scripted loop's replies, distorted the way real servers answer.

``RealServer(LoopScript(), "think", roles={"judge"})`` answers like a reasoning model served
without a reasoning parser, for the judge only. Each personality is one kind of reply seen from
real deployments (vLLM, SGLang, llama.cpp, Mistral's API, OpenAI, proxies):

- ``think``: ``<think>…</think>`` before the answer in ``content``; with a budget too small for
  the thought, only the cut thought (``finish_reason: length``)
- ``reasoning_field``: the thought in ``message.reasoning_content`` (a reasoning parser)
- ``fence``: JSON replies wrapped in a markdown code fence (``response_format`` ignored)
- ``list_content``: ``content`` as typed parts, a ``thinking`` part first (Mistral/Magistral)
- ``chatty``: solver answers ~1,700 characters long, cut at ``max_tokens`` (4 chars a token)
  before their conclusion — the judge sees whether the conclusion survived
- ``cut_json``: JSON replies cut in half with ``finish_reason: length``
- ``empty``: ``200`` with empty content; ``bad_usage``: usage counts as strings;
  ``html``: a web page instead of JSON
- ``ratelimit:<window_s>:<secs|date|none>``: HTTP 429 for ``window_s`` seconds after the first
  request, with ``Retry-After`` in seconds, as an HTTP-date, or absent
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from autodata.testing.replies import Reply, as_reply
from autodata.testing.roles import LoopScript, judge_reply, role_of

THOUGHT = (
    "<think>\nThe user wants an answer. Let me check the facts first and then reply.\n</think>\n\n"
)
CHATTY_STEPS = " ".join(
    f"Step {i}: checking the delivery times, the 48-hour window and the business-day count again."
    for i in range(1, 16)
)
CONCLUSION = "CONCLUSION: the notice was late, so termination is invalid."


class RealServer:
    """A responder: ``base`` (e.g. ``LoopScript()``) distorted by ``mode`` for ``roles``."""

    def __init__(
        self,
        base: Callable[[dict[str, Any]], Reply | str | dict[str, Any]],
        mode: str,
        roles: set[str] | None = None,
    ) -> None:
        self.base, self.mode, self.roles = base, mode, roles
        self._first: float | None = None
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        role = role_of(body)
        if self.mode == "chatty" and role == "judge":
            return self._judge_sees_conclusion(body)
        reply = as_reply(self.base(body))
        if self.roles is not None and role not in self.roles:
            return reply
        kind, _, arg = self.mode.partition(":")
        return getattr(self, f"_{kind}")(reply, body, arg)

    def _text(self, reply: Reply) -> str:
        return reply.text if isinstance(reply.text, str) else "ok"

    def _think(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        budget = int(body.get("max_tokens") or 512) * 4
        if len(THOUGHT) >= budget:
            return Reply(text=THOUGHT[:budget], finish_reason="length")
        return Reply(text=THOUGHT + self._text(reply))

    def _reasoning_field(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        return Reply(text=self._text(reply), reasoning="Check the facts.", logprobs=reply.logprobs)

    def _fence(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        if not body.get("response_format"):
            return reply
        return Reply(
            text="```json\n" + json.dumps(json.loads(self._text(reply)), indent=2) + "\n```"
        )

    def _list_content(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        parts = [{"type": "thinking", "thinking": [{"type": "text", "text": "brief thought"}]},
                 {"type": "text", "text": self._text(reply)}]  # fmt: skip
        return Reply(content=parts, logprobs=reply.logprobs)

    def _chatty(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        if role_of(body) not in ("weak", "strong"):
            return reply
        full = f"{self._text(reply)} The governing rule is clause 9.2. {CHATTY_STEPS} {CONCLUSION}"
        cut = int(body.get("max_tokens") or 512) * 4
        return (
            Reply(text=full[:cut], finish_reason="length") if len(full) > cut else Reply(text=full)
        )

    def _judge_sees_conclusion(self, body: dict[str, Any]) -> Reply:
        """The judge of ``chatty``: a weak answer with its conclusion meets every criterion."""
        script = self.base if isinstance(self.base, LoopScript) else LoopScript()
        return as_reply(
            judge_reply(
                body,
                lambda answer, i: (
                    ("WEAK-ANSWER" in answer and CONCLUSION in answer) or script.met(answer, i)
                ),
            )
        )

    def _cut_json(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        if not body.get("response_format"):
            return reply
        text = self._text(reply)
        return Reply(text=text[: len(text) // 2], finish_reason="length")

    def _empty(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        return Reply(text="")

    def _bad_usage(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        return Reply(
            text=self._text(reply), usage={"prompt_tokens": "12", "completion_tokens": "3"}
        )

    def _html(self, reply: Reply, body: dict[str, Any], _: str) -> Reply:
        return Reply(fault="garbage")  # an HTML error page with status 200

    def _ratelimit(self, reply: Reply, body: dict[str, Any], arg: str) -> Reply:
        window, _, variant = arg.partition(":")
        with self._lock:
            self._first = self._first or time.monotonic()
        if time.monotonic() - self._first >= float(window):
            return reply
        headers = {}
        if variant == "secs":
            headers["Retry-After"] = str(int(float(window)))
        elif variant == "date":
            headers["Retry-After"] = formatdate(time.time() + float(window), usegmt=True)
        return Reply(status=429, headers=headers, text="Rate limit reached for requests per min.")
