"""The end-of-run summary: a table of decisions and costs, the causes of failed calls per role,
and, when nothing was accepted, a plain explanation of why and what to do. When calls failed,
the last line names the dominant cause, the role and the setting that fixes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autodata.terminal import printable

WHY = {
    "judge_unreliable": "the judge could not tell the reference answer from a non-answer",
    "failed_quality": "the Challenger's items failed the quality verifier (leaks, malformed rubrics, invalid JSON)",
    "too_easy": "the weak solver already scored above the gate",
    "failed_strong": "the strong solver did not clear the gate, or the gap was too small",
    "suspicious_zero": "a weak answer scored 0, which points at a broken item",
    "infra_error": "model calls failed or were cut at max_tokens; they are retried, not counted as rejections",
}
# Causes of failed attempts (CallStats.causes) → what it means, and the fix for role ``{r}``.
CAUSES = {
    "http_429": ("HTTP 429 (rate limited)", "lower models.{r}.max_concurrency or raise models.{r}.rate_limit_wait_s"),
    "timeout": ("timeouts", "raise models.{r}.timeout_s or lower models.{r}.max_concurrency"),
    "connection": ("connection failures", "is the server up? check models.{r}.base_url"),
    "bad_reply": ("malformed replies (not a usable chat.completion)", "run `autodata models check`; is models.{r}.base_url an OpenAI-compatible /v1 URL?"),
    "truncated": ("replies cut at max_tokens", "raise models.{r}.max_tokens (a reasoning model: or models.{r}.thinking: off)"),
    "invalid_output": ("unparseable or schema-breaking JSON", "use a stronger model for {r}, or see `autodata models check`"),
}  # fmt: skip


def cause_counts(per_role: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(role, cause, count) for every failed attempt and truncated reply, largest first."""
    rows = [
        (role, cause, int(n))
        for role, stats in per_role.items()
        for cause, n in (stats.get("causes") or {}).items()
        if n
    ]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))


def cause_label(cause: str) -> str:
    """What a cause means: ``http_503`` → 'HTTP 503 (server error)'."""
    if cause in CAUSES:
        return CAUSES[cause][0]
    if cause.startswith("http_5"):
        return f"HTTP {cause[5:]} (server error)"
    return cause


def dominant_cause(per_role: dict[str, Any]) -> str | None:
    """One line: the most frequent cause of failed calls, its role and the fix; None if none."""
    counts = cause_counts(per_role)
    if not counts:
        return None
    role, cause, n = counts[0]
    fix = CAUSES.get(cause, ("", "check the server's logs for role {r}"))[1].format(r=role)
    return f"main cause of failed or retried calls: {role}: {n} × {cause_label(cause)} — {fix}"


def render(metrics: dict[str, Any], console: Console, embedded: bool) -> None:
    """Print the summary table and, if nothing was accepted, the reason."""
    table = Table(title="autodata run", show_header=True, header_style="bold")
    table.add_column("decision")
    table.add_column("rounds", justify="right")
    for decision, count in metrics["decisions"].items():
        table.add_row(decision, str(count))
    console.print(table)
    llm = metrics["llm"]
    n_skipped = metrics.get("skipped_files") or 0
    skipped = f" · {n_skipped} source files skipped (named above)" if n_skipped else ""
    console.print(
        f"sources {metrics['sources']} · accepted {metrics['accepted']} "
        f"({metrics['acceptance_rate']:.0%}) · mean rounds per accepted {metrics['mean_rounds_per_accepted'] or '-'} · "
        f"LLM calls {llm['logical_calls']} ({llm['http_requests']} HTTP requests, "
        f"{sum(r.get('retries', 0) for r in llm['per_role'].values())} retried, "
        f"{sum(r.get('cache_hits', 0) for r in llm['per_role'].values())} from cache)" + skipped
    )
    if metrics["accepted"] == 0:
        console.print(explain_zero(metrics["decisions"], embedded))
    render_causes(llm["per_role"], console)


def render_causes(per_role: dict[str, Any], console: Console) -> None:
    """A table of failed calls by role and cause, then the dominant cause as the last line."""
    counts = cause_counts(per_role)
    if not counts:
        return
    table = Table(title="failed or cut calls", show_header=True, header_style="bold")
    for column in ("role", "cause", "times"):
        table.add_column(column, justify="right" if column == "times" else "left")
    for role, cause, n in counts:  # a cause may quote a server (an HTTP status): never markup
        table.add_row(Text(printable(role)), Text(printable(cause_label(cause))), str(n))
    console.print(table)
    console.print(printable(dominant_cause(per_role) or ""), markup=False, highlight=False)


def explain_zero(decisions: dict[str, int], embedded: bool) -> str:
    """Why nothing was accepted, from the decision counts."""
    rejected = {d: n for d, n in decisions.items() if n and d != "accepted"}
    if not rejected:
        return "Nothing was accepted: no candidate was evaluated."
    top = max(rejected, key=lambda d: rejected[d])
    text = (
        f"Nothing was accepted. Most rounds ended as {top} ({rejected[top]}): {WHY.get(top, top)}."
    )
    if embedded:
        text += (
            "\nThis is the expected outcome on the embedded SmolLM2-135M default: it is an end-to-end "
            "smoke test, not a data generator. Point the challenger and judge at real models "
            "(≥ 1–3B parameters): see README, 'Using real models'."
        )
    return text


def cause_of_failed_run(generate_metrics: Path) -> str | None:
    """After validation failed, the dominant cause of failed calls from the run's metrics
    (written before validation), so the last line says e.g. 'HTTP 429', not only a share."""
    if not generate_metrics.is_file():
        return None
    try:
        per_role = json.loads(generate_metrics.read_text())["llm"]["per_role"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dominant_cause(per_role)
