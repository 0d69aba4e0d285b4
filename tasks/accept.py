"""Stage: accept. The gates of DESIGN §1 (steps 5 and 7, and the verifiable-mode rule) as pure
functions over the judgments table. Re-running them on stored judgments makes no LLM call.

Decision order matters: infrastructure first (never a quality verdict), then quality, then the
judge's controls (an unreliable judge is never ``too_easy`` and never accepted), then the gates.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import polars as pl

from autodata import schemas
from autodata.settings import Gate

PENDING = "pending_strong"  # weak gate passed; the strong solver still has to run
DIGITS = 9  # scores are rounded so that 0.85 - 0.65 compares as 0.2, not 0.19999999999999996


def summarize(judgments: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per candidate: weak/strong mean, max, min, infra flags and control scores."""
    ok = pl.col("call_status") == "ok"
    score, p_score = pl.col("score").filter(ok), pl.col("p_score").filter(ok)
    cut = pl.col("call_status") == "truncated"
    groups = judgments.group_by("candidate_id", "role").agg(
        infra=(~ok).any(), truncated=cut.any(), n_ok=ok.sum(), mean=score.mean(), max=score.max(), min=score.min(),
        p=p_score.mean(), p_missing=p_score.null_count() > 0,
    )  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for g in groups.iter_rows(named=True):
        stats, role = out.setdefault(g["candidate_id"], {}), g["role"]
        stats[f"{role}_infra"] = g["infra"]
        stats[f"{role}_truncated"] = g["truncated"]
        if g["n_ok"]:
            stats[f"{role}_mean"] = round(g["mean"], DIGITS)
            stats[f"{role}_max"] = round(g["max"], DIGITS)
            stats[f"{role}_min"] = round(g["min"], DIGITS)
            stats[f"{role}_p"] = None if g["p_missing"] else g["p"]
    return out


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


TRUNCATED = (
    "{role} answers cut at max_tokens even after a retry with a larger budget: not graded, "
    "so the item cannot be judged easy or hard; raise models.{role}.max_tokens"
)


def _weak_decision(s: dict[str, Any], gate: Gate, verifiable: bool) -> tuple[str, str] | None:
    if s.get("weak_truncated"):  # a cut answer is no evidence of weakness (never too_easy/accepted)
        return "infra_error", TRUNCATED.format(role="weak")
    if (
        s.get("weak_infra")
        or s.get("control_ref_infra")
        or s.get("control_null_infra")
        or "weak_mean" not in s
    ):
        return "infra_error", "a weak-solver or judge call failed; retried in a later round"
    if not verifiable:
        gap = control_gap(s)
        if gap is None or gap < gate.control_margin:
            return (
                "judge_unreliable",
                f"judge control gap {gap} < margin {gate.control_margin}: it cannot tell the reference answer from a non-answer",
            )
    if verifiable:
        return ("too_easy", "weak majority vote is right") if s["weak_mean"] >= 0.5 else None
    if s["weak_mean"] > gate.weak_mean_max:
        return "too_easy", f"weak_mean {s['weak_mean']:.3f} > {gate.weak_mean_max}"
    if s["weak_max"] > gate.weak_max_max:
        return "too_easy", f"weak_max {s['weak_max']:.3f} > {gate.weak_max_max}"
    if gate.forbid_zero_weak and s["weak_min"] == 0:
        return "suspicious_zero", "a weak rollout scored 0"
    return None


def _strong_decision(s: dict[str, Any], gate: Gate, verifiable: bool) -> tuple[str, str]:
    if s.get("strong_truncated"):
        return "infra_error", TRUNCATED.format(role="strong")
    if s.get("strong_infra") or "strong_mean" not in s:
        return "infra_error", "a strong-solver or judge call failed; retried in a later round"
    gap = round(s["strong_mean"] - s["weak_mean"], DIGITS)
    if verifiable:
        return (
            ("accepted", "")
            if s["strong_mean"] > 0.5
            else ("failed_strong", "strong majority vote is wrong")
        )
    if gate.forbid_zero_strong and s["strong_min"] == 0:
        return "failed_strong", "a strong rollout scored 0"
    if not gate.strong_mean_min <= s["strong_mean"] < gate.strong_mean_max:
        return (
            "failed_strong",
            f"strong_mean {s['strong_mean']:.3f} outside [{gate.strong_mean_min}, {gate.strong_mean_max})",
        )
    if gap < gate.min_gap:
        return "failed_strong", f"gap {gap:.3f} < {gate.min_gap}"
    return "accepted", ""


def decide_one(
    candidate: dict[str, Any], stats: dict[str, Any], gate: Gate, *, verifiable: bool = False
) -> tuple[str, str]:
    """The decision and its reason for one candidate; ``PENDING`` if strong has not run yet."""
    if candidate["call_status"] != "ok":
        return "infra_error", candidate["qv_reason"]
    if not candidate["qv_passed"]:
        return "failed_quality", candidate["qv_reason"]
    weak = _weak_decision(stats, gate, verifiable)
    if weak is not None:
        return weak
    if "strong_mean" not in stats and not stats.get("strong_infra"):
        return PENDING, ""
    return _strong_decision(stats, gate, verifiable)


def feedback_line(decision: str, question: str | None, s: dict[str, Any], reason: str) -> str:
    """One typed line for the Challenger's next round on this source ('' when none is due)."""
    q = f'"{question}"' if question else "(no valid item)"
    figures = {k: s.get(k, float("nan")) for k in ("weak_mean", "strong_mean")}
    lines = {
        "too_easy": f"too easy (weak solver mean {figures['weak_mean']:.2f}): {q}",
        "suspicious_zero": f"a weak answer scored 0, which suggests a broken item: {q}",
        "failed_strong": f"failed on strong (weak {figures['weak_mean']:.2f}, strong {figures['strong_mean']:.2f}, "
        f"gap {figures['strong_mean'] - figures['weak_mean']:.2f}): {q}",
        "failed_quality": f"failed quality ({reason}): {q}",
        "judge_unreliable": f"could not be graded reliably (criteria did not separate a right answer from a non-answer): {q}",
    }
    return lines.get(decision, "")


def decide(
    challenges: pl.DataFrame, judgments: pl.DataFrame, gate: Gate, *, verifiable: bool = False
) -> pl.DataFrame:
    """The ``rounds`` rows (``schemas.ROUNDS``) for one round's candidates."""
    stats = summarize(judgments)
    rows = [
        _round_row(c, stats.get(c["candidate_id"], {}), gate, verifiable)
        for c in challenges.iter_rows(named=True)
    ]
    frame = pl.DataFrame(rows, schema=schemas.ROUNDS) if rows else schemas.empty(schemas.ROUNDS)
    return schemas.check(frame, schemas.ROUNDS, "rounds")


def _round_row(
    c: dict[str, Any], s: dict[str, Any], gate: Gate, verifiable: bool
) -> dict[str, Any]:
    decision, reason = decide_one(c, s, gate, verifiable=verifiable)
    has_both = "strong_mean" in s and "weak_mean" in s
    return {
        "candidate_id": c["candidate_id"], "source_id": c["source_id"], "round": c["round"], "question": c["question"],
        "weak_mean": s.get("weak_mean"), "weak_max": s.get("weak_max"), "weak_min": s.get("weak_min"),
        "strong_mean": s.get("strong_mean"), "strong_min": s.get("strong_min"),
        "gap": round(s["strong_mean"] - s["weak_mean"], DIGITS) if has_both else None,
        "control_gap": control_gap(s), "decision": decision, "reason": reason,
        "feedback": feedback_line(decision, c["question"], s, reason),
        "recipe_hash": c["recipe_hash"], "gate": gate.model_dump_json(),
    }  # fmt: skip


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")  # 1,000,000.5 is one number
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")  # one level of nested braces
_FRAC = re.compile(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}")


def final_answer(text: str) -> str:
    """The checkable final answer of a solution: \\boxed{..}, 'answer: ..', or the last number."""
    if boxed := _BOXED.findall(text):
        return _normalize(boxed[-1])
    if tail := re.findall(r"answer\s*(?:is|:)\s*([^\n]+)", text, flags=re.IGNORECASE):
        numbers = _NUMBER.findall(tail[-1])
        return _normalize(numbers[0] if numbers else tail[-1])
    numbers = _NUMBER.findall(text)
    return _normalize(numbers[-1]) if numbers else _normalize(text)


def _normalize(answer: str) -> str:
    answer = _FRAC.sub(r"\1/\2", answer).strip().strip(".").replace(",", "").lower()
    try:
        return f"{float(answer):.15g}"  # plain :g keeps 6 digits: 1234567 would equal 1234568
    except ValueError:
        return re.sub(r"\s+", " ", answer)


def score_verifiable(items: pl.DataFrame, rollouts: pl.DataFrame) -> pl.DataFrame:
    """Verifiable mode: a rollout scores 1 if its final answer equals the reference, else 0."""
    refs = {
        r["candidate_id"]: final_answer(r["reference_answer"]) for r in items.iter_rows(named=True)
    }
    rows = []
    for r in rollouts.iter_rows(named=True):
        ok = r["call_status"] == "ok"
        failed = "truncated" if r["call_status"] == "truncated" else "infra_error"
        right = ok and final_answer(r["answer"]) == refs[r["candidate_id"]]
        rows.append({"candidate_id": r["candidate_id"], "role": r["role"], "rollout": r["rollout"],
                     "criterion_met": [right] if ok else [], "criterion_p_yes": [None] if ok else [],
                     "score": float(right) if ok else None, "p_score": None, "judge_model": "exact-match",
                     "call_status": "ok" if ok else failed, "finish_reasons": []})  # fmt: skip
    frame = (
        pl.DataFrame(rows, schema=schemas.JUDGMENTS) if rows else schemas.empty(schemas.JUDGMENTS)
    )
    return schemas.check(frame, schemas.JUDGMENTS, "judgments")


def decision_counts(rounds: pl.DataFrame) -> dict[str, int]:
    """Rounds per decision, every decision listed (zeros included)."""
    counts = Counter(rounds["decision"].to_list())
    return {d: counts.get(d, 0) for d in schemas.DECISIONS}
