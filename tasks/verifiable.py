"""Verifiable mode's answer checking: extract a solution's final answer, compare two answers with
numeric equivalence, and take a true majority vote over extracted answers. Pure functions.

Extraction reads, in this order, the last ``Final answer: …`` line (what the solver is asked to
write, ``autodata/prompts/solver_final_answer.md``), the last ``\\boxed{…}`` and the last
``#### …`` line (GSM8K). A solution with none of them has no answer (``None``): it is never
guessed from the last number in the text, which would credit a weak solver for a number it
only mentioned.

Equivalence: both answers parse as numbers → equal within ``tolerance`` (relative to the larger
magnitude, absolute below 1), where ``1/2``, ``\\frac{1}{2}``, ``0.5``, ``50%`` and ``1,200``
/ ``1200`` are numbers; a percentage also matches its value without the sign (``50%`` = ``50``
= ``0.5``, as math graders such as Qwen2.5-Math's evaluation do); otherwise the normalised
texts (case, spaces, ``$``, ``\\text{}``, a final period) must be equal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import polars as pl

_FINAL = re.compile(r"^[\s*_#>-]*final\s+answer[\s*_]*[:：][\s*_]*(.+?)[\s*_]*$", re.IGNORECASE | re.MULTILINE)  # fmt: skip
_HASHES = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{([^{}]*)\}")
_NUMBER = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:e[-+]?\d+)?$", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_MINUS = str.maketrans({"−": "-", "–": "-", "\u2009": "", "\u202f": "", "\xa0": ""})


def boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{…}`` (braces balanced at any depth), or None."""
    start = text.rfind("\\boxed")
    while start >= 0:
        brace = text.find("{", start)
        if brace >= 0 and not text[start + len("\\boxed") : brace].strip():
            depth = 0
            for i in range(brace, len(text)):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                if depth == 0:
                    return text[brace + 1 : i].strip()
        start = text.rfind("\\boxed", 0, start)
    return None


def extract(text: str | None) -> str | None:
    """The final answer a solution states, or None when it states none."""
    if not text:
        return None
    for found in (_last(_FINAL, text), boxed(text), _last(_HASHES, text)):
        if found:
            inner = boxed(found)  # "Final answer: \boxed{12}"
            return (inner or found).strip()
    return None


def _last(pattern: re.Pattern[str], text: str) -> str | None:
    hits = pattern.findall(text)
    return hits[-1] if hits else None


def reference_answer(text: str) -> str:
    """The answer key of a reference answer: its stated final answer, else the whole text."""
    return extract(text) or text.strip()


def normalize(answer: str) -> str:
    """Comparable text: LaTeX wrappers, ``$``, spaces, case and a final period removed."""
    text = _TEXT.sub(r"\1", answer.translate(_MINUS))
    text = _FRAC.sub(r"(\1)/(\2)", text).replace("\\left", "").replace("\\right", "")
    text = text.replace("\\%", "%").replace("\\$", "").replace("$", "").replace("\\,", "")
    return _SPACES.sub("", text).rstrip(".").lower()


def number(answer: str) -> tuple[Fraction, bool] | None:
    """(value, was a percentage) of a numeric answer, else None. Fractions stay exact."""
    text = normalize(answer)
    percent = text.endswith("%")
    text = text.removesuffix("%")
    if re.fullmatch(r"\(?[-+]?[\d.,]+\)?/\(?[\d.,]+\)?", text):
        top, bottom = (_decimal(p.strip("()")) for p in text.split("/", 1))
        value = top / bottom if top is not None and bottom else None
    else:
        value = _decimal(text)
    return None if value is None else (value, percent)


def _decimal(text: str) -> Fraction | None:
    if not text or not _NUMBER.match(text) or not any(ch.isdigit() for ch in text):
        return None
    return Fraction(text.replace(",", ""))


def equivalent(answer: str | None, reference: str, tolerance: float) -> bool:
    """Whether ``answer`` states the same value as ``reference`` (see the module doc)."""
    if answer is None:
        return False
    left, right = number(answer), number(reference)
    if left is None or right is None:
        return normalize(answer) == normalize(reference)
    return any(_close(a, b, tolerance) for a in _readings(left) for b in _readings(right))


def _readings(parsed: tuple[Fraction, bool]) -> tuple[Fraction, ...]:
    value, percent = parsed
    return (value, value / 100) if percent else (value,)


def _close(a: Fraction, b: Fraction, tolerance: float) -> bool:
    scale = max(Fraction(1), abs(a), abs(b))
    return abs(a - b) <= Fraction(tolerance) * scale


def majority(answers: Sequence[str | None], tolerance: float) -> str | None:
    """The answer most extracted answers agree on (equivalent ones grouped); None when no
    answer was extracted or the top groups tie."""
    groups: list[tuple[str, int]] = []
    for answer in answers:
        if answer is None:
            continue
        for i, (head, count) in enumerate(groups):
            if equivalent(answer, head, tolerance):
                groups[i] = (head, count + 1)
                break
        else:
            groups.append((answer, 1))
    ranked = sorted(groups, key=lambda g: -g[1])
    if not ranked or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]


def votes(
    answers: dict[str, Sequence[str | None]], reference: str, tolerance: float
) -> dict[str, Any]:
    """The answer key of ``reference``, each role's majority answer (``answers``: role → the
    answers extracted from its rollouts) and whether that majority is right."""
    key = reference_answer(reference)
    out: dict[str, Any] = {"answer_key": key}
    for role in ("weak", "strong"):
        vote = majority(answers.get(role) or [], tolerance)
        out |= {f"{role}_vote": vote, f"{role}_right": equivalent(vote, key, tolerance)}
    return out


def known_answer(metadata: str | None) -> str | None:
    """The known answer a source carries (``sources.metadata``: a record's ``answer`` field or a
    markdown file's front matter), as an answer key; None when it has none."""
    try:
        data = json.loads(metadata or "{}")
    except ValueError:
        return None
    value = data.get("answer") if isinstance(data, dict) else None
    return reference_answer(str(value)) if value not in (None, "") else None


def _mismatch(text: str | None, ours: str, key: str) -> str:
    """Why a reference answer fails against the source's known answer ``key``: it states no
    final answer (a real 1.5B challenger often ends on "... = 0.125." without one), or another."""
    if extract(text) is None:
        return (f"the reference answer states no final answer (end it with a line 'Final answer: "
                f"...'), so it cannot be checked against the source's known answer {key!r}")  # fmt: skip
    return f"reference answer {ours!r} is not the source's known answer {key!r}"


def check_known_answers(
    challenges: pl.DataFrame, sources: pl.DataFrame, tolerance: float
) -> pl.DataFrame:
    """Verifiable mode's quality check against the source: an item whose reference answer is not
    equivalent to its source's known answer fails quality (the challenger asked another question
    or got it wrong), with both answers in ``qv_reason``. Sources without one are left alone."""
    keys = {
        r["source_id"]: known_answer(r["metadata"])
        for r in sources.select("source_id", "metadata").iter_rows(named=True)
    }
    rows = []
    for row in challenges.iter_rows(named=True):
        key = keys.get(row["source_id"])
        ours = reference_answer(row["reference_answer"] or "")
        if row["qv_passed"] and key is not None and not equivalent(ours, key, tolerance):
            row |= {"qv_passed": False, "qv_reason": _mismatch(row["reference_answer"], ours, key)}
        rows.append(row)
    return pl.DataFrame(rows, schema=challenges.schema) if rows else challenges
