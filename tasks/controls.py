"""The judge's controls, part of stage accept: on every candidate the judge also grades the
reference answer (should meet the rubric) and a non-answer (should meet none of it). A judge
that cannot tell them apart makes every weak/strong score meaningless, so such a candidate is
``judge_unreliable`` — never ``too_easy``, never accepted.

Two checks (DESIGN §1 step 5): on the total, the reference must outscore the non-answer by
``gate.control_margin``; per criterion, the non-answer must meet none (a criterion met by "I
don't know." measures nothing, whatever the total says).
"""

from __future__ import annotations

from typing import Any

DIGITS = 9  # scores are rounded so that 0.85 - 0.65 compares as 0.2, not 0.19999999999999996


def control_gap(stats: dict[str, Any]) -> float | None:
    """How far the judge separates the reference answer from a non-answer (None: not graded).

    The hard-verdict gap is what the gates use, so it always counts; where the server gave
    logprobs, the P(yes) gap must also clear the margin (the smaller of the two is returned).
    """
    if "control_ref_mean" not in stats or "control_null_mean" not in stats:
        return None
    gaps = [stats["control_ref_mean"] - stats["control_null_mean"]]
    if stats.get("control_ref_p") is not None and stats.get("control_null_p") is not None:
        gaps.append(stats["control_ref_p"] - stats["control_null_p"])
    return round(min(gaps), DIGITS)


def null_met_criteria(stats: dict[str, Any]) -> list[int]:
    """The 1-based rubric criteria the judge says the non-answer meets (empty: none, or the
    non-answer was not graded)."""
    return [i for i, met in enumerate(stats.get("control_null_met") or [], 1) if met]


def control_failure(stats: dict[str, Any], margin: float) -> str | None:
    """Why the controls fail (``judge_unreliable``'s reason), or None when they pass."""
    gap = control_gap(stats)
    if gap is None or gap < margin:
        return f"judge control gap {gap} < margin {margin}: it cannot tell the reference answer from a non-answer"
    met = null_met_criteria(stats)
    if met:
        listed = ", ".join(map(str, met))
        return f"the judge says the non-answer meets criterion {listed}: that criterion measures nothing"
    return None
