"""The end-of-run summary: a table of decisions and costs, and, when nothing was accepted,
a plain explanation of why and what to do."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

WHY = {
    "judge_unreliable": "the judge could not tell the reference answer from a non-answer "
    "(a small judge says 'yes' to everything)",
    "failed_quality": "the Challenger's items failed the quality verifier (leaks, malformed rubrics, invalid JSON)",
    "too_easy": "the weak solver already scored above the gate",
    "failed_strong": "the strong solver did not clear the gate, or the gap was too small",
    "suspicious_zero": "a weak answer scored 0, which points at a broken item",
    "infra_error": "model calls failed (timeouts, server errors); they are retried, not counted as rejections",
}


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
