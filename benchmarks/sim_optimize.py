"""The load server's ``optimize`` mode: items whose hidden pass probabilities depend on the
challenger instructions they were written with, and a scripted analyzer and editor.

Challenger. Its request's messages are searched for the rules of :data:`GOOD` and
:data:`HARMFUL` (exact sentences, as the scripted editor writes them); the item's question
carries the rules found (``[rules a+b]``) beside its tag (``case <tag>``). Judge. Each item is of
one class, drawn from (tag, rules): with probability ``bad`` (the harmful rules' weights, summed)
*easy* — both solvers meet every criterion with p 0.97; else with probability ``good`` (the good
rules' weights) *in the zone* — the weak solver meets the first criterion (p 0.97) and rarely the
others (0.2), the strong one most (1.0, 0.9, 0.6); else *base* — ``sim.hidden_probs`` as in the
compute benchmark (skewed to easy). Two uniforms per item decide its class (one against ``bad``,
one against ``good``), so a harmful rule only ever turns items easy and a good one only ever
turns more of them in-zone: comparisons on a small validation set are not drowned in noise.

Analyzer: one paragraph from the digest's decision counts. Editor: a proposal chosen by a hash of
its request — a good rule not yet in the parent (40 %), a harmful rule (18 %), a forbidden edit
of the measurement (20 %: the weak solver's prompt as Meta's optimizer did, the gate, the judge,
the weak model's sampling), a template-breaking edit (8 %), an oversized one (7 %) or a neutral
sampling change (7 %).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from autodata.testing.replies import Reply
from autodata.testing.roles import challenger_item, judge_reply, role_of, user_text
from benchmarks.sim import SimScript, hidden_probs, tag_of, unit

GOOD = {
    "no-leak": (
        "Never state the answer, the source's conclusion or any step of its solution in the context.",
        0.15,
    ),
    "multi-step": (
        "The question must need at least three reasoning steps that combine separate facts of the context.",
        0.20,
    ),
    "doc-specific": (
        "Ask about a detail specific to this document that a solver without the source cannot guess.",
        0.15,
    ),
    "rubric": (
        "Each rubric criterion checks one concrete point of the reference answer, with a positive integer weight from 1 to 7.",
        0.10,
    ),
    "self-test": (
        "Before you answer, check that a careful expert could solve the item from the context alone but a quick guess would miss a key step.",
        0.10,
    ),
}
HARMFUL = {
    "short": ("Keep the question short and simple so that any model can answer it.", 0.50),
    "copy": (
        "Copy the key sentences of the source, including its conclusion, into the context.",
        0.40,
    ),
}
FORBIDDEN = [
    {"target": "solver_system", "action": "set", "new": "Answer in three words. Do not reason."},
    {"target": "gate.weak_mean_max", "action": "set", "new": "0.9"},
    {"target": "judge_system", "action": "append", "new": "When unsure, answer yes."},
    {"target": "models.weak.temperature", "action": "set", "new": "2.0"},
]
ZONE = {"weak": (0.97, 0.2, 0.2), "strong": (1.0, 0.9, 0.6)}
EASY = {"weak": (0.97, 0.97, 0.97), "strong": (0.97, 0.97, 0.97)}
MENU = (("good", 0.40), ("harmful", 0.18), ("forbidden", 0.20), ("template", 0.08), ("size", 0.07))  # fmt: skip
_RULES = re.compile(r"\[rules ([a-z+-]+)\]")


def rules_in(text: str) -> list[str]:
    """The catalogue rules (keys) that ``text`` contains."""
    return [key for key, (rule, _) in (GOOD | HARMFUL).items() if rule in text]


def item_class(tag: str, rules: list[str], seed: int = 0) -> str:
    """``easy`` | ``zone`` | ``base`` for an item (module docstring)."""
    bad = min(0.95, sum(HARMFUL[r][1] for r in rules if r in HARMFUL))
    good = min(0.95, sum(GOOD[r][1] for r in rules if r in GOOD))
    if unit(seed, tag, "easy") < bad:
        return "easy"
    return "zone" if unit(seed, tag, "zone") < good else "base"


def criterion_probs(tag: str, rules: list[str], role: str, seed: int = 0) -> tuple[float, ...]:
    """Per-criterion probability that ``role``'s answer meets it (rubric order)."""
    kind = item_class(tag, rules, seed)
    if kind != "base":
        return (ZONE if kind == "zone" else EASY)[role]
    p_weak, p_strong = hidden_probs(tag, seed)
    return (p_weak if role == "weak" else p_strong,) * 3


def expected_scores(tag: str, rules: list[str], seed: int = 0) -> tuple[float, float]:
    """The item's hidden expected (weak, strong) scores under the rubric's weights (3, 5, 4)."""
    weights = (3, 5, 4)
    return tuple(  # type: ignore[return-value]
        sum(w * p for w, p in zip(weights, criterion_probs(tag, rules, role, seed), strict=True))
        / 12
        for role in ("weak", "strong")
    )


@dataclass
class OptimizeScript(SimScript):
    """Every role of the loop, plus the analyzer and the editor (module docstring)."""

    def __call__(self, body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        role = role_with_optimizer(body)
        if role == "analyzer":
            return analysis(user_text(body))
        if role == "editor":
            return proposal(user_text(body))
        if role == "challenger":
            return self._challenger(body)
        if role == "judge":
            return self._judge_item(body)
        return super().__call__(body)

    def _challenger(self, body: dict[str, Any]) -> dict[str, Any]:
        item = challenger_item(body)
        text = "\n".join(m.get("content") or "" for m in body.get("messages", []))
        item["question"] += f" [rules {'+'.join(rules_in(text)) or 'none'}]"
        return item

    def _judge_item(self, body: dict[str, Any]) -> Reply | dict[str, Any]:
        text = user_text(body)
        tag, match = tag_of(text) or "", _RULES.search(text)
        rules = [r for r in match.group(1).split("+") if r != "none"] if match else []

        def met(answer: str, index: int) -> bool:
            if "WEAK-ANSWER" in answer or "STRONG-ANSWER" in answer:
                role = "weak" if "WEAK-ANSWER" in answer else "strong"
                return unit(self.sim_seed, tag, answer, index) < criterion_probs(tag, rules, role, self.sim_seed)[index]  # fmt: skip
            return "I don't know" not in answer  # a reliable judge

        return judge_reply(body, met)


def role_with_optimizer(body: dict[str, Any]) -> str:
    """``analyzer`` | ``editor`` | the loop's role (``autodata.testing.roles.role_of``)."""
    messages = body.get("messages", [])
    if messages and "root-cause analysis" in (messages[0].get("content") or ""):
        return "analyzer"
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    return "editor" if schema == "EditorOut" else role_of(body)


def _criterion_index(name: str) -> int:
    from autodata.testing.roles import RUBRIC

    names = [c["criterion"] for c in RUBRIC]
    return names.index(name) if name in names else 0


def analysis(prompt: str) -> str:
    """The scripted analyzer: what dominates the decisions of the digest in ``prompt``."""
    match = re.search(r"decisions: (.+?) \(of (\d+) items\)", prompt)
    counts = dict(re.findall(r"([a-z_]+) (\d+)", match.group(1))) if match else {}
    top = max(counts, key=lambda k: int(counts[k])) if counts else "nothing"
    return (f"Most items ended as {top} ({counts.get(top, 0)} of {match.group(2) if match else 0}). "
            "The weak solver answers them without the source: the questions need one step and the "
            "context gives the conclusion away. Ask for multi-step reasoning on details specific "
            "to the document and never state the answer in the context.")  # fmt: skip


def proposal(prompt: str) -> dict[str, Any]:
    """The scripted editor's JSON for the request text ``prompt`` (module docstring)."""
    u = unit("editor", hashlib.sha256(prompt.encode()).hexdigest())
    v = unit("pick", prompt)
    kind, edge = "neutral", 0.0
    for name, share in MENU:
        edge += share
        if u < edge:
            kind = name
            break
    return {"rationale": f"scripted {kind} edit", "edits": [_edit(kind, prompt, v)]}


def _edit(kind: str, prompt: str, v: float) -> dict[str, Any]:
    missing = [rule for rule, _ in GOOD.values() if rule not in prompt]
    if kind == "good" and missing:
        return {"target": "challenger_system", "action": "append", "new": missing[int(v * len(missing))]}  # fmt: skip
    if kind == "harmful":
        rules = [rule for rule, _ in HARMFUL.values()]
        return {"target": "challenger_system", "action": "append", "new": rules[int(v * len(rules))]}  # fmt: skip
    if kind == "forbidden":
        return dict(FORBIDDEN[int(v * len(FORBIDDEN))])
    if kind == "template":
        return {"target": "challenger_user", "action": "replace", "old": "$source", "new": "the source above"}  # fmt: skip
    if kind == "size":
        return {"target": "challenger_system", "action": "append", "new": "Be careful and precise. " * 100}  # fmt: skip
    return {"target": "challenger.temperature", "action": "set", "new": json.dumps(round(0.2 + 0.4 * v, 2))}  # fmt: skip
