"""The dataset card (``README.md`` of the export): a Hugging Face-style YAML header + markdown.

:func:`dataset_card` is pure: frames and plain values in, markdown out. With zero accepted rows
the card says why in plain words instead of presenting an empty dataset as a result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from autodata.schemas import DECISIONS
from autodata.settings import EMBEDDED_MODEL, ROLES

REAL_MODELS = 'the section "Using real models" in the project README'


def dataset_card(
    accepted: pl.DataFrame,
    rounds: pl.DataFrame,
    recipe: dict[str, Any],
    summary: dict[str, Any],
    plots: dict[str, Path],
    out_dir: Path,
) -> str:
    """The markdown card for an export written to ``out_dir`` (plots linked relatively)."""
    recipe, summary = _plain(recipe), _plain(summary)
    sections = [
        _header(accepted.height),
        "# autodata export\n\nQuestion / reference answer / weighted rubric triples made by "
        "Agentic Self-Instruct: each was kept only when a weak solver scored low, a strong "
        "solver scored high and the gap between them was large.",
        _contents(accepted, rounds),
        _why_empty(rounds, recipe) if accepted.is_empty() else _scores(accepted),
        _decisions(rounds),
        _models(accepted, recipe),
        _lineage(accepted, rounds, summary),
        "## Recipe\n\n```yaml\n" + yaml.safe_dump(recipe, sort_keys=True).strip() + "\n```",
        _plots(plots, out_dir),
        _formats(),
    ]
    return "\n\n".join(sections) + "\n"


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """A YAML-safe copy (paths, datetimes and the like become strings)."""
    return json.loads(json.dumps(value, default=str))


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M" if n < 1_000_000 else "n>1M"


def _header(n: int) -> str:
    meta = {
        "pretty_name": "autodata Agentic Self-Instruct export",
        "tags": ["synthetic", "agentic-self-instruct", "rubric", "autodata"],
        "task_categories": ["question-answering", "text-generation"],
        "size_categories": [_size_category(n)],
        "configs": [
            {"config_name": name, "data_files": [{"split": "train", "path": f"{name}.jsonl"}]}
            for name in ("sft", "rl")
        ],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False).strip() + "\n---"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _contents(accepted: pl.DataFrame, rounds: pl.DataFrame) -> str:
    rows = [
        ("accepted examples", accepted.height),
        ("rounds run", rounds.height),
        ("sources attempted", rounds["source_id"].n_unique()),
        ("sources with an accepted example", accepted["source_id"].n_unique()),
    ]
    files = (
        "Files: `sft.jsonl` (chat messages), `rl.jsonl` (prompt + rubric for GRPO-style "
        "training), `hf/` (a `datasets.DatasetDict` with splits `sft` and `rl`)."
    )
    return "## Contents\n\n" + _table(("what", "count"), rows) + "\n\n" + files


def _decision_counts(rounds: pl.DataFrame) -> dict[str, int]:
    counts = rounds["decision"].fill_null("(null)").value_counts()
    found = dict(zip(counts["decision"], counts["count"], strict=True))
    ordered = {d: int(found.pop(d, 0)) for d in DECISIONS}
    return ordered | {k: int(v) for k, v in found.items()}


def _decisions(rounds: pl.DataFrame) -> str:
    total = max(rounds.height, 1)
    rows = [(d, n, f"{n / total:.0%}") for d, n in _decision_counts(rounds).items()]
    return "## Decisions per round\n\n" + _table(("decision", "rounds", "share"), rows)


def _uses_embedded(recipe: dict[str, Any]) -> bool:
    models = recipe.get("models") or {}
    return any(isinstance(m, dict) and m.get("model") == EMBEDDED_MODEL for m in models.values())


def _why_empty(rounds: pl.DataFrame, recipe: dict[str, Any]) -> str:
    counts = ", ".join(f"{d}: {n}" for d, n in _decision_counts(rounds).items() if n)
    text = (
        "## Why this export is empty\n\n"
        f"No candidate passed the gate in {rounds.height} round(s) ({counts or 'no rounds ran'}). "
        "The files below exist and are empty, so downstream steps still run. "
    )
    if _uses_embedded(recipe):
        text += (
            "This run used the embedded SmolLM2-135M-Instruct model, which is a smoke test of "
            "the pipeline (JSON, gates, tables, validation, export), not a data generator: a "
            "135M model cannot write usable questions or judge them (its judge says yes to "
            "everything, so candidates are rejected as judge_unreliable). "
        )
    return text + (
        "To produce data, point the challenger, judge and strong solver at real models "
        f"(at least 1-3B parameters); see {REAL_MODELS}."
    )


FRESH_PAIRS = (("weak_mean", "fresh_weak_mean"), ("strong_mean", "fresh_strong_mean"), ("gap", "fresh_gap"))  # fmt: skip


def _scores(accepted: pl.DataFrame) -> str:
    """Fresh re-scoring figures as the headline, the selection-time ones beside them."""
    fresh = accepted.filter(pl.col("fresh_gap").is_not_null())

    def stats(frame: pl.DataFrame, column: str) -> tuple[str, str]:
        mean, median = frame.select(pl.col(column).mean(), pl.col(column).median().alias("m")).row(
            0
        )
        return (f"{mean:.3f}", f"{median:.3f}") if mean is not None else ("-", "-")

    if fresh.is_empty():
        rows: list[tuple[str, ...]] = [(c, *stats(accepted, c)) for c, _ in FRESH_PAIRS]
        return ("## Scores of accepted examples\n\n" + _table(("score", "mean", "median"), rows)
                + "\n\nThese are the rollouts the gate decided on (`rollouts.fresh` is 0: no fresh "
                "re-scoring), so they overstate the gap: items were kept *because* they scored well.")  # fmt: skip
    rows = [(sel, *stats(fresh, new), *stats(fresh, sel)) for sel, new in FRESH_PAIRS]
    header = ("score", "fresh mean", "fresh median", "at selection: mean", "at selection: median")
    flagged = int(fresh["fresh_flag"].sum())
    return (
        "## Scores of accepted examples\n\n" + _table(header, rows) + "\n\n"
        f"**Fresh** figures: {fresh.height} of {accepted.height} accepted items re-solved and "
        "re-judged after acceptance with new seeds, rollouts the decision never saw, so they "
        "estimate the items' real difficulty without the selection bias. **At selection**: the "
        "rollouts the gate decided on; keeping items because they scored well inflates their gap. "
        f"{flagged} item(s) have a fresh gap below `gate.fresh_min_gap` (`fresh_flag` in the data)."
    )


def _models(accepted: pl.DataFrame, recipe: dict[str, Any]) -> str:
    configured = recipe.get("models") or {}
    rows = []
    for role in ROLES:
        spec = configured.get(role) or {}
        seen = [_recorded(accepted, f"{role}_{c}") for c in ("model", "prompt_hash")]
        rows.append((role, spec.get("model", "-"), *seen))
    head = ("role", "configured", "recorded on accepted rows", "prompt hashes recorded")
    return "## Models\n\n" + _table(head, rows)


def _recorded(accepted: pl.DataFrame, column: str) -> str:
    """The distinct values of ``column`` on the accepted rows, or '-'."""
    if column not in accepted.columns:
        return "-"
    return ", ".join(accepted[column].drop_nulls().unique().sort().to_list()) or "-"


def _lineage(accepted: pl.DataFrame, rounds: pl.DataFrame, summary: dict[str, Any]) -> str:
    hashes = sorted(
        set(rounds["recipe_hash"].drop_nulls()) | set(accepted["recipe_hash"].drop_nulls())
    )
    revs = set(accepted["git_rev"].drop_nulls())
    if summary.get("git_rev"):
        revs.add(str(summary["git_rev"]))
    rows = [
        ("recipe hashes", ", ".join(f"`{h}`" for h in hashes) or "-"),
        ("sources attempted", rounds["source_id"].n_unique()),
        ("git revisions", ", ".join(f"`{r}`" for r in sorted(revs)) or "-"),
    ]
    text = "## Lineage\n\n" + _table(("what", "value"), rows)
    if summary:
        dumped = yaml.safe_dump(summary, sort_keys=True, default_flow_style=False).strip()
        text += "\n\nRun summary (from the generate stage):\n\n```yaml\n" + dumped + "\n```"
    return text


def _plots(plots: dict[str, Path], out_dir: Path) -> str:
    lines = [
        f"![{name}]({Path(os.path.relpath(path, out_dir)).as_posix()})"
        for name, path in plots.items()
    ]
    return "## Plots\n\n" + "\n\n".join(lines)


def _formats() -> str:
    return (
        "## Record formats\n\n"
        '- `sft.jsonl`: `{"id", "messages": [user: context + question, assistant: reference '
        'answer], "metadata": {...}}`.\n'
        '- `rl.jsonl`: `{"id", "prompt": [user message], "reference_answer", "rubric": '
        '[{"criterion", "weight"}], ...}`. TRL\'s `GRPOTrainer` reads `prompt` and passes every '
        "other column to the reward functions as keyword arguments, so a rubric reward can "
        "grade completions against `rubric` and `reference_answer`."
    )
