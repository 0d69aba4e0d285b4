"""Export stage: accepted examples -> training files, plots and a dataset card.

Pure-ish core: :func:`export` takes the ``accepted`` and ``rounds`` frames plus the recipe and
the generate summary as plain values, and writes, each atomically:

- ``sft.jsonl``: one chat per row, user = context + blank line + question, assistant =
  reference answer, plus lineage ``metadata``;
- ``rl.jsonl``: the shape TRL's ``GRPOTrainer`` consumes, a conversational ``prompt`` plus
  extra columns (``reference_answer``, ``rubric``, ...) that the trainer hands to reward
  functions as keyword arguments ("All column names (but `prompt`) that the dataset may
  have", https://huggingface.co/docs/trl/grpo_trainer#using-a-custom-reward-function);
- ``hf/``: a ``datasets.DatasetDict`` with splits ``sft`` and ``rl`` (``save_to_disk``);
- plots and their tidy CSVs in ``plots_dir`` (:mod:`tasks.plots`);
- ``README.md``, the dataset card (:mod:`tasks.card`).

An empty accepted table is a valid input: empty JSONL files, an empty dataset with the same
features, and a card that says why. :func:`export_stage` runs it on the project's files,
:func:`export_task` inside a flow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from autodata import schemas
from autodata._killpoints import killpoint
from autodata.io import atomic_dir, atomic_path, write_text
from autodata.settings import ROLES, Settings
from tasks.accept import accepted_and_rounds
from tasks.card import dataset_card
from tasks.plots import render_plots

__all__ = ["export", "export_stage", "export_task", "rl_records", "sft_records"]

METADATA = (
    "candidate_id",
    "source_id",
    "domain",
    "round",
    "rounds_used",
    "question_type",
    "reasoning_skills",
    "weak_mean",
    "strong_mean",
    "gap",
    "recipe_hash",
    *(f"{role}_{c}" for role in ROLES for c in ("model", "prompt_hash")),
    "git_rev",
)
RL_EXTRA = (
    "source_id",
    "domain",
    "question_type",
    "weak_mean",
    "strong_mean",
    "gap",
    "recipe_hash",
)


def export(
    accepted: pl.DataFrame,
    rounds: pl.DataFrame,
    out_dir: Path,
    plots_dir: Path,
    recipe: dict[str, Any],
    summary: dict[str, Any],
) -> dict[str, Any]:
    """Write every export artefact; return the row counts and the paths written."""
    accepted = schemas.check(accepted, schemas.ACCEPTED, "accepted")
    rounds = schemas.check(rounds, schemas.ROUNDS, "rounds")
    sft, rl = sft_records(accepted), rl_records(accepted)
    paths = {
        "sft": _write_jsonl(sft, out_dir / "sft.jsonl"),
        "rl": _write_jsonl(rl, out_dir / "rl.jsonl"),
        "hf": _write_hf(sft, rl, out_dir / "hf"),
    }
    plots = render_plots(accepted, rounds, plots_dir)
    card = dataset_card(accepted, rounds, recipe, summary, plots, out_dir)
    paths["card"] = write_text(card, out_dir / "README.md")
    return {
        "accepted": accepted.height,
        "rounds": rounds.height,
        "sft_rows": len(sft),
        "rl_rows": len(rl),
        "paths": {k: str(v) for k, v in paths.items()},
        "plots": {k: str(v) for k, v in plots.items()},
    }


def export_stage(settings: Settings) -> dict[str, Any]:
    """The export stage on the project's files: the accept stage's outputs and the generate
    metrics in, the training files, plots and card out; :class:`SourceError` if accept has not
    run."""
    accepted, rounds = accepted_and_rounds(settings.paths)
    paths = settings.paths
    summary = (
        json.loads(paths.generate_metrics.read_text()) if paths.generate_metrics.exists() else {}
    )
    killpoint("export:before-write")
    return export(accepted, rounds, paths.export, paths.plots, settings.recipe(), summary)


@task(name="export", cache_policy=NO_CACHE)
def export_task(settings: Settings) -> dict[str, Any]:
    """Prefect wrapper of :func:`export_stage`."""
    return export_stage(settings)


def _user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def _prompt(row: dict[str, Any]) -> str:
    return f"{row['context']}\n\n{row['question']}"


def sft_records(accepted: pl.DataFrame) -> list[dict[str, Any]]:
    """One ``{"id", "messages", "metadata"}`` chat record per accepted row."""
    return [
        {
            "id": row["candidate_id"],
            "messages": [
                _user(_prompt(row)),
                {"role": "assistant", "content": row["reference_answer"]},
            ],
            "metadata": {k: row[k] for k in METADATA},
        }
        for row in accepted.iter_rows(named=True)
    ]


def rl_records(accepted: pl.DataFrame) -> list[dict[str, Any]]:
    """One GRPO record per accepted row: conversational ``prompt`` + rubric reward columns."""
    return [
        {
            "id": row["candidate_id"],
            "prompt": [_user(_prompt(row))],
            "reference_answer": row["reference_answer"],
            "rubric": [{"criterion": c["criterion"], "weight": c["weight"]} for c in row["rubric"]],
            **{k: row[k] for k in RL_EXTRA},
        }
        for row in accepted.iter_rows(named=True)
    ]


def _write_jsonl(records: list[dict[str, Any]], target: Path) -> Path:
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return target


def _features() -> dict[str, Any]:
    from datasets import Features, List, Value

    message = List({"role": Value("string"), "content": Value("string")})
    types: dict[str, Any] = {k: Value("string") for k in METADATA}
    types |= {k: Value("float64") for k in ("weak_mean", "strong_mean", "gap")}
    types |= {"round": Value("int64"), "rounds_used": Value("int64")}
    types["reasoning_skills"] = List(Value("string"))
    rubric = List({"criterion": Value("string"), "weight": Value("int64")})
    return {
        "sft": Features(
            {
                "id": Value("string"),
                "messages": message,
                "metadata": {k: types[k] for k in METADATA},
            }
        ),
        "rl": Features(
            {
                "id": Value("string"),
                "prompt": message,
                "reference_answer": Value("string"),
                "rubric": rubric,
                **{k: types[k] for k in RL_EXTRA},
            }
        ),
    }


def _write_hf(sft: list[dict[str, Any]], rl: list[dict[str, Any]], target: Path) -> Path:
    from datasets import Dataset, DatasetDict

    features = _features()
    splits = DatasetDict(
        {
            name: Dataset.from_dict(
                {k: [r[k] for r in recs] for k in features[name]}, features=features[name]
            )
            for name, recs in (("sft", sft), ("rl", rl))
        }
    )
    # An empty split saved with the default (0) shards cannot be loaded back: give it one.
    shards = {name: 1 for name, split in splits.items() if len(split) == 0}
    with atomic_dir(target) as tmp:
        splits.save_to_disk(str(tmp), num_shards=shards)
    return target
