"""A responder that plays every role of the loop, for tests and benchmarks.

It recognises the role from the request (the JSON schema name, or the prompt's shape), answers
in that role's format, and lets a test script the judge: which criteria a weak or a strong
answer meets. Solver answers carry a marker so the judge can tell whose answer it grades.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autodata.testing.replies import Reply

RUBRIC = [
    {"criterion": "Identifies the governing rule", "weight": 3},
    {"criterion": "Applies the rule to the stated facts", "weight": 5},
    {"criterion": "States the final conclusion", "weight": 4},
]


def role_of(body: dict[str, Any]) -> str:
    """challenger | verifier | weak | strong | judge, from a chat request body."""
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    if schema == "ChallengeOut":
        return "challenger"
    if schema == "VerifierOut":
        return "verifier"
    if schema == "RubricVerdicts":
        return "judge"
    text = "\n".join(m.get("content") or "" for m in body.get("messages", []))
    if "Criterion:" in text and "<answer>" in text:
        return "judge"
    return "strong" if "Background document" in text else "weak"


def user_text(body: dict[str, Any]) -> str:
    """The last user message."""
    users = [m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


@dataclass
class LoopScript:
    """Scripted behaviour per role. ``weak_met``/``strong_met`` list, per rubric criterion,
    whether the judge says yes to that role's answers (default: an accepted item)."""

    weak_met: list[bool] = field(default_factory=lambda: [True, False, False])  # 3/12 = 0.25
    strong_met: list[bool] = field(default_factory=lambda: [True, True, False])  # 8/12 ≈ 0.667
    reference_met: bool = True
    null_met: bool = False
    verifier: dict[str, Any] = field(
        default_factory=lambda: {"leak": False, "clear": True, "rubric_ok": True, "reason": "fine"}
    )
    challenger: Callable[[dict[str, Any]], Reply | str | dict[str, Any]] | None = None
    logprobs: bool = True

    def __call__(self, body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        role = role_of(body)
        if role == "challenger":
            return self.challenger(body) if self.challenger else challenger_item(body)
        if role == "verifier":
            return self.verifier
        if role in ("weak", "strong"):
            return f"{role.upper()}-ANSWER seed={body.get('seed')}: the conclusion follows from the rule."
        return self._judge(body)

    def met(self, answer: str, index: int) -> bool:
        """Whether the scripted judge says ``answer`` meets criterion ``index``."""
        if "WEAK-ANSWER" in answer:
            return self.weak_met[index]
        if "STRONG-ANSWER" in answer:
            return self.strong_met[index]
        return self.null_met if "I don't know" in answer else self.reference_met

    def _judge(self, body: dict[str, Any]) -> Reply | dict[str, Any]:
        return judge_reply(body, self.met, logprobs=self.logprobs)


def judge_reply(
    body: dict[str, Any], met: Callable[[str, int], bool], *, logprobs: bool = True
) -> Reply | dict[str, Any]:
    """The judge's reply under either protocol (``loop.judge_protocol``), ``met(answer, i)``
    saying whether the graded answer meets criterion ``i`` (0-based): per answer, the JSON of a
    reason and a verdict per criterion; per criterion, one word with first-token logprobs."""
    text = user_text(body)
    answer = text.split("<answer>", 1)[1].split("</answer>", 1)[0]
    if "json_schema" in (body.get("response_format") or {}):
        count = len(re.findall(r"^\d+\. ", text.rsplit("</answer>", 1)[1], flags=re.MULTILINE))
        return {f"criterion_{i + 1}": {"reason": "scripted", "verdict": "yes" if met(answer, i) else "no"}
                for i in range(count)}  # fmt: skip
    yes = met(answer, _criterion_index(text))
    tops = [{"yes": -0.05, "no": -3.0}] if yes else [{"no": -0.05, "yes": -3.0}]
    return Reply(text="yes" if yes else "no", logprobs=tops if logprobs else None)


def _criterion_index(judge_prompt: str) -> int:
    # the template's own line comes last: an answer quoting "Criterion: ..." must not fool it
    found = re.findall(r"^Criterion: (.+)$", judge_prompt, flags=re.MULTILINE)
    name = found[-1].strip() if found else ""
    names = [c["criterion"] for c in RUBRIC]
    return names.index(name) if name in names else 0


def challenger_item(body: dict[str, Any]) -> dict[str, Any]:
    """A valid challenger JSON item, distinct per source and round (seed)."""
    tag = hashlib.sha256((user_text(body) + str(body.get("seed"))).encode()).hexdigest()[:8]
    return {
        "context": f"Facts of case {tag}: a supplier delivered goods late and the buyer gave notice.",
        "question": f"Under the stated rule, is the buyer in case {tag} entitled to terminate, and why?",
        "reference_answer": "Yes: notice was given within the period, so termination is valid.",
        "question_type": "application",
        "reasoning_skills": ["rule application"],
        "rubric": RUBRIC,
    }


def request_role_counts(requests: list[Any]) -> dict[str, int]:
    """How many recorded chat requests each role made."""
    counts: dict[str, int] = {}
    for req in requests:
        if req.path.endswith("/chat/completions"):
            role = role_of(req.body)
            counts[role] = counts.get(role, 0) + 1
    return counts
