"""Stage: accept. The gates of DESIGN §1 (steps 5 and 7, and the verifiable-mode rule) as pure
functions over the judgments table, and the final stage that applies them.

Used twice. Inside the loop (:mod:`flows.generate`): the weak gate picks the candidates the
strong solver sees (:func:`weak_gate_task`), and each round is decided (:func:`decide_task`).
As the final stage (``autodata stage accept``, :func:`finalize`): every decision is recomputed
under the current gate from the loop's stored tables (no LLM call), the first accepted round per
source becomes an ``accepted`` row with its lineage, and the run's metrics are computed.

Decision order matters: infrastructure first (never a quality verdict), then quality, then the
judge's controls (an unreliable judge is never ``too_easy`` and never accepted), then the gates.

Input: ``schemas.CHALLENGES`` + ``schemas.JUDGMENTS`` (+ ``SOURCES``, ``ROLLOUTS`` for the
final stage). Output: ``schemas.ROUNDS`` and ``schemas.ACCEPTED``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from autodata import recipes, schemas
from autodata._killpoints import killpoint
from autodata.errors import SourceError
from autodata.io import write_json, write_parquet
from autodata.settings import Gate, Paths, Rollouts, Settings
from autodata.stagefile import read_or_empty
from tasks import gate_sequential
from tasks.controls import DIGITS, control_failure, control_gap
from tasks.evidence import fresh_summary, row_evidence
from tasks.verifiable import votes

PENDING = gate_sequential.PENDING_STRONG  # weak gate passed; the strong solver still has to run
PENDING_STATES = (PENDING, gate_sequential.MORE)  # not decided yet: the loop draws more


@dataclass(frozen=True)
class Rules:
    """What decides a round, as values: the gate, the mode and the sequential gate's caps
    (:meth:`of` reads them from the settings)."""

    gate: Gate
    verifiable: bool = False
    rollouts: Rollouts = field(default_factory=Rollouts)

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(settings.gate, settings.loop.mode == "verifiable", settings.rollouts)

    def decide(self, challenges: pl.DataFrame, judgments: pl.DataFrame) -> pl.DataFrame:
        """:func:`decide` under these rules."""
        return decide(challenges, judgments, self.gate, verifiable=self.verifiable,
                      rollouts=self.rollouts)  # fmt: skip


def summarize(judgments: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per candidate and role (solvers, controls, fresh re-scoring): mean, max, min, infra flags,
    and every graded score and stated answer in rollout order (``<role>_scores``/``_answers``)."""
    ok = pl.col("call_status") == "ok"
    score, p_score = pl.col("score").filter(ok), pl.col("p_score").filter(ok)
    cut = pl.col("call_status") == "truncated"
    groups = judgments.sort("rollout").group_by("candidate_id", "role").agg(
        infra=(~ok).any(), truncated=cut.any(), n_ok=ok.sum(), mean=score.mean(), max=score.max(), min=score.min(),
        p=p_score.mean(), p_missing=p_score.null_count() > 0, scores=score, answers=pl.col("extracted").filter(ok),
        met=pl.col("criterion_met").filter(ok).first(),
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
            stats[f"{role}_scores"], stats[f"{role}_answers"] = g["scores"], g["answers"]
            if role.startswith("control_"):  # one graded answer each: its per-criterion verdicts
                stats[f"{role}_met"] = g["met"]
    return out


TRUNCATED = (
    "{role} answers cut at max_tokens even after a retry with a larger budget: not graded, "
    "so the item cannot be judged easy or hard; raise models.{role}.max_tokens"
)


def _weak_decision(
    s: dict[str, Any], gate: Gate, verifiable: bool, sequential: bool = False
) -> tuple[str, str] | None:
    if s.get("weak_truncated"):  # a cut answer is no evidence of weakness (never too_easy/accepted)
        return "infra_error", TRUNCATED.format(role="weak")
    if (
        s.get("weak_infra")
        or s.get("control_ref_infra")
        or s.get("control_null_infra")
        or "weak_mean" not in s
    ):
        return "infra_error", "a weak-solver or judge call failed; retried in a later round"
    if not verifiable and (failure := control_failure(s, gate.control_margin)):
        return "judge_unreliable", failure
    if verifiable:
        right = s["weak_right"]
        return (
            ("too_easy", f"the weak majority answer {s['weak_vote']} is right") if right else None
        )
    if sequential:  # the means decide (tasks.gate_sequential)
        return None
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
        vote = s["strong_vote"] or "none (no stated answer, or a tie)"
        wrong = f"the strong majority answer {vote} is not {s['answer_key']}"
        return ("accepted", "") if s["strong_right"] else ("failed_strong", wrong)
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
    candidate: dict[str, Any], stats: dict[str, Any], gate: Gate, *, verifiable: bool = False,
    rollouts: Rollouts | None = None,
) -> tuple[str, str]:  # fmt: skip
    """The decision and its reason for one candidate; a :data:`PENDING_STATES` marker while the
    loop has more to draw. Verifiable mode votes on the stated answers (``gate.answer_tolerance``);
    ``gate.method: sequential`` decides rubric means on the evidence so far, with
    ``rollouts``' caps (defaults: the settings')."""
    if candidate["call_status"] != "ok":
        return "infra_error", candidate["qv_reason"]
    if not candidate["qv_passed"]:
        return "failed_quality", candidate["qv_reason"]
    if verifiable:
        answers = {role: stats.get(f"{role}_answers") or [] for role in ("weak", "strong")}
        stats = stats | votes(answers, candidate["reference_answer"], gate.answer_tolerance)
    sequential = gate.method == "sequential" and not verifiable
    weak = _weak_decision(stats, gate, verifiable, sequential)
    if weak is not None:
        return weak
    if sequential and not (stats.get("strong_infra") or stats.get("strong_truncated")):
        strong = stats.get("strong_scores") or []
        return gate_sequential.decide(stats["weak_scores"], strong, gate, rollouts or Rollouts())
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
    challenges: pl.DataFrame, judgments: pl.DataFrame, gate: Gate, *, verifiable: bool = False,
    rollouts: Rollouts | None = None,
) -> pl.DataFrame:  # fmt: skip
    """The ``rounds`` rows (``schemas.ROUNDS``) for one round's candidates (``rollouts``,
    each with its evidence (:mod:`tasks.evidence`)."""
    stats, rules = summarize(judgments), Rules(gate, verifiable, rollouts or Rollouts())
    rows = [_round_row(c, stats.get(c["candidate_id"], {}), rules) for c in challenges.iter_rows(named=True)]  # fmt: skip
    frame = pl.DataFrame(rows, schema=schemas.ROUNDS) if rows else schemas.empty(schemas.ROUNDS)
    return schemas.check(frame, schemas.ROUNDS, "rounds")


def _round_row(c: dict[str, Any], s: dict[str, Any], rules: Rules) -> dict[str, Any]:
    gate, mode = rules.gate, "verifiable" if rules.verifiable else "rubric"
    decision, reason = decide_one(c, s, gate, verifiable=rules.verifiable, rollouts=rules.rollouts)
    has_both = "strong_mean" in s and "weak_mean" in s
    evidence = row_evidence(c["reference_answer"] or "", s, gate, mode=mode)
    return {
        "candidate_id": c["candidate_id"], "source_id": c["source_id"], "round": c["round"], "question": c["question"],
        "weak_mean": s.get("weak_mean"), "weak_max": s.get("weak_max"), "weak_min": s.get("weak_min"),
        "strong_mean": s.get("strong_mean"), "strong_min": s.get("strong_min"),
        "gap": round(s["strong_mean"] - s["weak_mean"], DIGITS) if has_both else None,
        "control_gap": control_gap(s), "decision": decision, "reason": reason,
        "feedback": feedback_line(decision, c["question"], s, reason),
        "recipe_hash": c["recipe_hash"], "gate": gate.model_dump_json(),
    } | evidence  # fmt: skip


def decision_counts(rounds: pl.DataFrame) -> dict[str, int]:
    """Rounds per decision, every decision listed (zeros included)."""
    counts = Counter(rounds["decision"].to_list())
    return {d: counts.get(d, 0) for d in schemas.DECISIONS}


# --- inside the loop: the weak gate, and each round's decisions -----------------------------


def passed_weak_gate(
    challenges: pl.DataFrame, weak_judgments: pl.DataFrame, rules: Rules
) -> pl.DataFrame:
    """The challenges the strong solver answers: those whose weak step passed the gate."""
    pending = rules.decide(challenges, weak_judgments)
    ids = pending.filter(pl.col("decision") == PENDING)["candidate_id"]
    return challenges.filter(pl.col("candidate_id").is_in(ids.implode()))


@task(name="weak-gate", cache_policy=NO_CACHE)
def weak_gate_task(
    challenges: pl.DataFrame, weak_judgments: pl.DataFrame, rules: Rules
) -> pl.DataFrame:
    """Prefect wrapper of :func:`passed_weak_gate` (no model call, nothing written)."""
    return passed_weak_gate(challenges, weak_judgments, rules)


@task(name="decide", cache_policy=NO_CACHE)
def decide_task(
    challenges: pl.DataFrame, judgments: list[pl.DataFrame], rules: Rules, target: Path
) -> pl.DataFrame:
    """A round's ``rounds`` rows from its challenges and every judgment of the round, decided
    under ``rules`` and written to ``target`` (always: deciding costs no call)."""
    rounds = rules.decide(challenges, schemas.concat(judgments, schemas.JUDGMENTS))
    write_parquet(rounds, target)
    return rounds


# --- the final stage: decisions under the current gate, accepted rows, metrics ------------


def loop_tables(paths: Paths) -> dict[str, tuple[Path, pl.Schema]]:
    """The generate stage's tables this stage reads: name -> (path, schema)."""
    return {
        "challenges": (paths.challenges_table, schemas.CHALLENGES),
        "rollouts": (paths.rollouts_table, schemas.ROLLOUTS),
        "judgments": (paths.judgments_table, schemas.JUDGMENTS),
        "loop_rounds": (paths.loop_rounds_table, schemas.ROUNDS),
    }


def final_rounds(
    challenges: pl.DataFrame, judgments: pl.DataFrame, loop_rounds: pl.DataFrame, rules: Rules
) -> pl.DataFrame:
    """Decisions under ``rules``. Where the stored rollouts cannot settle a candidate (the loop's
    gate stopped it at the weak step, or a changed sequential gate wants more rollouts than the
    loop drew) the loop's own decision and its recorded gate are kept."""
    decided = rules.decide(challenges, judgments)
    pending = pl.col("decision").is_in(list(PENDING_STATES))
    kept = loop_rounds.filter(
        pl.col("candidate_id").is_in(decided.filter(pending)["candidate_id"].implode())
    )
    return schemas.check(
        pl.concat([decided.filter(~pending), kept]).sort("source_id", "round"),
        schemas.ROUNDS,
        "rounds",
    )


def producers(
    challenges: pl.DataFrame, rollouts: pl.DataFrame, judgments: pl.DataFrame
) -> pl.DataFrame:
    """Per candidate, the model and prompt hash of every role (``<role>_model``,
    ``<role>_prompt_hash``) as the rows that role wrote record them: lineage is read from the
    data, never from the settings of the run that happens to decide."""
    recorded = [f"{r}_{c}" for r in ("challenger", "verifier") for c in ("model", "prompt_hash")]
    frame = challenges.select("candidate_id", *recorded)
    solvers = [(rollouts.filter(pl.col("role") == r), "model", r) for r in ("weak", "strong")]
    graded = judgments.filter(pl.col("role").is_in(["weak", "strong"]))
    for rows, model, role in [*solvers, (graded, "judge_model", "judge")]:
        first = pl.col(model).first().alias(f"{role}_model"), pl.col("prompt_hash").first()
        by_id = rows.group_by("candidate_id").agg(*first)
        frame = frame.join(by_id.rename({"prompt_hash": f"{role}_prompt_hash"}), on="candidate_id", how="left")  # fmt: skip
    return frame


def accepted_rows(
    rounds: pl.DataFrame, challenges: pl.DataFrame, sources: pl.DataFrame,
    made_by: pl.DataFrame, git_rev: str, *, drop_flagged: bool = False,
) -> pl.DataFrame:  # fmt: skip
    """One row per source that was accepted (its first accepted round), with its lineage: the
    roles' models and prompt hashes (``made_by``, from :func:`producers`) and ``git_rev``.
    ``drop_flagged`` (``gate.drop_flagged``) leaves out items whose fresh gap was flagged."""
    used = rounds.group_by("source_id").agg(rounds_used=pl.col("round").max())
    dropped = pl.col("fresh_flag").fill_null(False) & drop_flagged
    first = (
        rounds.filter((pl.col("decision") == "accepted") & ~dropped)
        .sort("round")
        .unique("source_id", keep="first")
    )
    item_cols = ["candidate_id", "context", "reference_answer", "question_type", "reasoning_skills", "rubric"]  # fmt: skip
    frame = (
        first.join(challenges.select(item_cols), on="candidate_id")
        .join(sources.select("source_id", "domain"), on="source_id", how="left")
        .join(used, on="source_id")
        .join(made_by, on="candidate_id", how="left")
        .with_columns(git_rev=pl.lit(git_rev, dtype=pl.String))
    )
    return schemas.check(frame.sort("source_id"), schemas.ACCEPTED, "accepted")


def metrics(
    rounds: pl.DataFrame,
    accepted: pl.DataFrame,
    n_sources: int,
    calls: dict[str, dict[str, int]],
    rollouts: pl.DataFrame,
) -> dict[str, Any]:
    """The numbers of ``metrics/generate.json``."""
    n_acc = accepted.height
    requests = sum(c.get("calls", 0) for c in calls.values())
    logical = sum(
        c.get("calls", 0) - c.get("retries", 0) + c.get("cache_hits", 0) for c in calls.values()
    )
    return {
        "sources": n_sources,
        "candidates": rounds.height,
        "accepted": n_acc,
        "acceptance_rate": round(n_acc / n_sources, 4) if n_sources else 0.0,
        "mean_rounds_per_accepted": round(float(accepted["round"].mean()), 3) if n_acc else None,  # type: ignore[arg-type]
        "decisions": decision_counts(rounds),
        "fresh": fresh_summary(rounds),
        "llm": {
            "per_role": calls,
            "http_requests": requests,
            "logical_calls": logical,
            "calls_per_accepted": round(logical / n_acc, 2) if n_acc else None,
        },
        "solver_tokens": {
            role: {"in": int(g["tokens_in"].sum()), "out": int(g["tokens_out"].sum())}
            for (role,), g in rollouts.group_by("role")
        },
    }


# --- read / write wrapper and its Prefect task ---------------------------------------------


def finalize(
    settings: Settings, git_rev: str, calls: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    """The accept stage on the project's files: read the loop's tables, write ``rounds``,
    ``accepted`` and ``metrics/generate.json``, record the recipes; return the metrics.

    ``calls``: this run's call counts per role (``autodata run``); None reads those the generate
    stage wrote (``autodata stage accept``).
    """
    paths = settings.paths
    read = {
        name: read_or_empty(path, schema, name)
        for name, (path, schema) in loop_tables(paths).items()
    }
    sources = read_or_empty(paths.sources_table, schemas.SOURCES, "sources")
    rounds = final_rounds(read["challenges"], read["judgments"], read["loop_rounds"], Rules.of(settings))  # fmt: skip
    made_by = producers(read["challenges"], read["rollouts"], read["judgments"])
    accepted = accepted_rows(rounds, read["challenges"], sources, made_by, git_rev,
                             drop_flagged=settings.gate.drop_flagged)  # fmt: skip
    if calls is None:
        calls = json.loads(paths.calls_file.read_text()) if paths.calls_file.exists() else {}
    result = metrics(rounds, accepted, sources.height, calls, read["rollouts"])
    killpoint("finalize:before-write")
    write_parquet(rounds, paths.rounds_table)
    write_parquet(accepted, paths.accepted_table)
    write_json(result, paths.generate_metrics)
    recipes.record_recipe(settings, paths.recipe_registry, git_rev)
    return result


def accepted_and_rounds(paths: Paths) -> tuple[pl.DataFrame, pl.DataFrame]:
    """This stage's outputs, for the stages after it; a missing rounds table says what to run."""
    if not paths.rounds_table.exists():
        raise SourceError(
            f"{paths.rounds_table} not found; run `autodata stage accept` (or `dvc repro`) first"
        )
    accepted = read_or_empty(paths.accepted_table, schemas.ACCEPTED, "accepted")
    return accepted, read_or_empty(paths.rounds_table, schemas.ROUNDS, "rounds")


@task(name="accept", cache_policy=NO_CACHE)
def accept_task(
    settings: Settings, git_rev: str, calls: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    """Prefect wrapper of :func:`finalize`."""
    return finalize(settings, git_rev, calls)
