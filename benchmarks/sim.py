"""Simulation mode of the load server: every candidate has hidden weak/strong pass probabilities.

The challenger's item is tagged (``case <tag>``, see ``autodata.testing.roles.challenger_item``);
the tag seeds the candidate's hidden ``p_weak`` and ``p_strong``. The judge says "yes" to a weak
(strong) answer on a criterion with probability ``p_weak`` (``p_strong``), drawn from a hash of
(tag, answer, criterion), so a rerun gives the same verdicts. The judge is reliable: it meets the
reference answer and not the non-answer. The expected score of a role is then its probability,
which is what "truly in the zone" is judged on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from autodata.settings import Gate
from autodata.testing.replies import Reply
from autodata.testing.roles import RUBRIC, LoopScript, judge_reply, role_of, user_text

_TAG = re.compile(r"case ([0-9a-f]{8})")
_CRITERION = re.compile(r"Criterion: (.+)")
_NAMES = [c["criterion"] for c in RUBRIC]


def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hidden_probs(tag: str, seed: int = 0) -> tuple[float, float]:
    """(p_weak, p_strong) of a candidate. Skewed towards easy items, as in the paper, where
    ~80 % of rejections are "too easy": p_weak = 1 - 0.8·u², p_strong = p_weak + (1 - p_weak)·√v.
    """
    u, v = unit(seed, tag, "weak"), unit(seed, tag, "strong")
    p_weak = 1 - 0.8 * u * u
    return p_weak, p_weak + (1 - p_weak) * v**0.5


def tag_of(text: str) -> str | None:
    """The candidate tag in a question or prompt, or None."""
    match = _TAG.search(text or "")
    return match.group(1) if match else None


def truly_in_zone(p_weak: float, p_strong: float, gate: Gate) -> bool:
    """Whether the hidden expected scores satisfy the gate's mean conditions (DESIGN §1)."""
    return (
        p_weak <= gate.weak_mean_max
        and gate.strong_mean_min <= p_strong < gate.strong_mean_max
        and p_strong - p_weak >= gate.min_gap
    )


@dataclass
class SimScript(LoopScript):
    """LoopScript whose judge follows each candidate's hidden probabilities."""

    sim_seed: int = 0

    def __call__(self, body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        if role_of(body) != "judge":
            return super().__call__(body)
        return self._sim_judge(body)

    def _sim_judge(self, body: dict[str, Any]) -> Reply | dict[str, Any]:
        tag = tag_of(user_text(body)) or ""
        p_weak, p_strong = hidden_probs(tag, self.sim_seed)

        def met(answer: str, index: int) -> bool:
            if "WEAK-ANSWER" in answer or "STRONG-ANSWER" in answer:
                p = p_weak if "WEAK-ANSWER" in answer else p_strong
                return unit(self.sim_seed, tag, answer, index) < p
            return "I don't know" not in answer  # reference met, non-answer not: a reliable judge

        return judge_reply(body, met)
