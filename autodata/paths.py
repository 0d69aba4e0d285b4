"""``Paths``: every file the pipeline reads or writes, named once (re-exported by
:mod:`autodata.settings`, where it is the ``paths`` section of the settings)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from autodata.section import Section


class RoundFiles(NamedTuple):
    """One round's files of the loop, one per step (read back instead of recomputed on resume)."""

    challenges: Path
    weak_rollouts: Path
    weak_judgments: Path
    strong_rollouts: Path
    strong_judgments: Path
    rounds: Path
    fresh_weak_rollouts: Path  # the fresh re-scoring of the round's accepted items
    fresh_weak_judgments: Path
    fresh_strong_rollouts: Path
    fresh_strong_judgments: Path


class StepFiles(NamedTuple):
    """One step of the sequential gate inside a round: the rollouts it drew and their grades."""

    weak_rollouts: Path
    weak_judgments: Path
    strong_rollouts: Path
    strong_judgments: Path


class Paths(Section):
    """Every path named once: the directories are settings; every file the pipeline writes in
    them is a property here, its name spelled nowhere else (``tests/unit/test_dvc_yaml.py``
    holds ``dvc.yaml`` to them). Inside a directory that one module owns whole (the export,
    the plots, the Data Docs, the call cache) that module lays out its own files."""

    sources: Path = Path("data/sources")
    interim: Path = Path("data/interim")
    processed: Path = Path("data/processed")
    export: Path = Path("data/export")
    metrics: Path = Path("metrics")
    reports: Path = Path("reports")
    cache: Path = Path(".cache/llm")
    models: Path = Path(".cache/models")
    logs: Path = Path(".cache/logs")
    optimize: Path = Path("data/optimize")  # meta-optimization: splits, variants, history, state

    @property
    def sources_table(self) -> Path:
        return self.processed / "sources.parquet"

    @property
    def rounds_table(self) -> Path:
        return self.processed / "rounds.parquet"

    @property
    def accepted_table(self) -> Path:
        return self.processed / "accepted.parquet"

    @property
    def generate_metrics(self) -> Path:
        return self.metrics / "generate.json"

    @property
    def optimize_metrics(self) -> Path:
        """Meta-optimization's figures, one entry per evaluated variant (``dvc metrics diff``)."""
        return self.metrics / "optimize.json"

    @property
    def skipped_sources_table(self) -> Path:
        return self.processed / "skipped_sources.parquet"

    @property
    def validation_metrics(self) -> Path:
        return self.metrics / "validation.json"

    @property
    def data_docs(self) -> Path:
        return self.reports / "validation"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"

    @property
    def challenges_table(self) -> Path:
        """The loop's items, every round (generate writes it, accept reads it)."""
        return self.interim / "challenges.parquet"

    @property
    def rollouts_table(self) -> Path:
        return self.interim / "rollouts.parquet"

    @property
    def judgments_table(self) -> Path:
        return self.interim / "judgments.parquet"

    @property
    def loop_rounds_table(self) -> Path:
        """The loop's own decisions (under the gate it searched with)."""
        return self.interim / "loop_rounds.parquet"

    @property
    def calls_file(self) -> Path:
        """The generate stage's call counts per role (read by ``autodata stage accept``)."""
        return self.interim / "calls.json"

    @property
    def recipe_snapshot(self) -> Path:
        """The recipe the generate stage ran with."""
        return self.interim / "recipe.json"

    @property
    def recipe_registry(self) -> Path:
        """Every recipe that produced data, by hash (:mod:`autodata.recipes`); only grows."""
        return self.processed / "recipes.jsonl"

    @property
    def lock_file(self) -> Path:
        """The project's run lock (:mod:`autodata.runlock`)."""
        return self.interim / ".autodata.lock"

    @property
    def prefect_log(self) -> Path:
        """The temporary Prefect server's log (:mod:`autodata.prefect_api`)."""
        return self.logs / "prefect-server.log"

    def work_dir(self, work_key: str) -> Path:
        """A work folder of the loop (one per source set): ``round_NN/<key>/<step>.parquet``."""
        return self.interim / "work" / work_key

    def round_files(
        self, work_key: str, round_no: int, keys: Mapping[str, str] | None = None
    ) -> RoundFiles:
        """The files of round ``round_no`` in the work folder ``work_key``, each in a folder
        named by its content key ``keys[step]`` (:func:`tasks.generate.round_keys`), so a file
        is read back only when everything that makes it is unchanged. A step without a key of
        its own takes the round's (``keys["rounds"]``), which covers the whole recipe."""
        folder, keys = self.work_dir(work_key) / f"round_{round_no:02d}", keys or {}
        own = {step: keys.get(step, keys.get("rounds", "")) for step in RoundFiles._fields}
        return RoundFiles(*(folder / own[step] / f"{step}.parquet" for step in RoundFiles._fields))

    def step_files(self, work_key: str, round_no: int, key: str, step: int) -> StepFiles:
        """The files of step ``step`` of the sequential gate in round ``round_no``, under the
        round's content key ``key`` (its ``rounds`` file's: the whole recipe)."""
        folder = self.work_dir(work_key) / f"round_{round_no:02d}" / key / f"step_{step:02d}"
        return StepFiles(*(folder / f"{name}.parquet" for name in StepFiles._fields))

    @property
    def anchors_table(self) -> Path:
        """The judge's verdicts on the drift anchors, graded at the start of the last run."""
        return self.interim / "judge_anchors.parquet"

    @staticmethod
    def round_of(folder: Path) -> int | None:
        """The number of a ``round_NN`` folder (as :meth:`round_files` names it), else None."""
        digits = folder.name.removeprefix("round_")
        return int(digits) if digits != folder.name and digits.isdigit() else None
