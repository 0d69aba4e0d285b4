"""The export stage, for real: JSONL, a `datasets` DatasetDict, matplotlib PNGs and the card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import polars as pl
import pytest
import yaml
from builders import empty_tables, make_tables

from autodata.settings import EMBEDDED_MODEL, Settings
from tasks.export import export
from tasks.plots import PLOTS, plot_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RECIPE = Settings().recipe()
SUMMARY = {"git_rev": "feedbee", "sources": 5, "rounds": 14}


class Run:
    def __init__(
        self, root: Path, tables: tuple[pl.DataFrame, pl.DataFrame], recipe: dict[str, Any]
    ):
        self.accepted, self.rounds = tables
        self.out, self.plots = root / "export", root / "plots"
        self.result = export(self.accepted, self.rounds, self.out, self.plots, recipe, SUMMARY)

    def lines(self, name: str) -> list[dict[str, Any]]:
        text = (self.out / name).read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines()]

    @property
    def card(self) -> str:
        return (self.out / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return Run(tmp_path_factory.mktemp("full"), make_tables(), RECIPE)


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return Run(tmp_path_factory.mktemp("empty"), empty_tables(), RECIPE)


# --- training files ---------------------------------------------------------------------


def test_sft_lines_are_chats_of_context_question_and_reference(full: Run) -> None:
    lines = full.lines("sft.jsonl")
    assert len(lines) == full.accepted.height == full.result["sft_rows"]
    for line, row in zip(lines, full.accepted.iter_rows(named=True), strict=True):
        assert set(line) == {"id", "messages", "metadata"}
        assert line["id"] == row["candidate_id"]
        user, assistant = line["messages"]
        assert user == {"role": "user", "content": row["context"] + "\n\n" + row["question"]}
        assert assistant == {"role": "assistant", "content": row["reference_answer"]}
        meta = line["metadata"]
        assert meta["source_id"] == row["source_id"]
        assert meta["domain"] == row["domain"]
        assert meta["recipe_hash"] == row["recipe_hash"]
        assert meta["git_rev"] == row["git_rev"]
        assert meta["gap"] == pytest.approx(row["gap"])


def test_rl_lines_have_a_conversational_prompt_and_the_rubric(full: Run) -> None:
    lines = full.lines("rl.jsonl")
    assert len(lines) == full.accepted.height == full.result["rl_rows"]
    for line, row in zip(lines, full.accepted.iter_rows(named=True), strict=True):
        assert {"id", "prompt", "reference_answer", "rubric", "source_id", "domain"} <= set(line)
        assert line["prompt"] == [
            {"role": "user", "content": row["context"] + "\n\n" + row["question"]}
        ]
        assert line["reference_answer"] == row["reference_answer"]
        assert line["rubric"] == row["rubric"]
        assert all(isinstance(c["weight"], int) for c in line["rubric"])


def test_hf_dataset_round_trips_with_equal_rows(full: Run) -> None:
    loaded = datasets.load_from_disk(str(full.out / "hf"))
    assert isinstance(loaded, datasets.DatasetDict)
    assert set(loaded) == {"sft", "rl"}
    assert loaded["sft"].num_rows == loaded["rl"].num_rows == full.accepted.height
    assert loaded["sft"][0] == full.lines("sft.jsonl")[0]
    assert loaded["rl"][1] == full.lines("rl.jsonl")[1]


def test_export_again_replaces_outputs_without_leftovers(tmp_path: Path) -> None:
    first = Run(tmp_path, make_tables(), RECIPE)
    second = Run(tmp_path, empty_tables(), RECIPE)
    assert second.result["sft_rows"] == 0
    assert datasets.load_from_disk(str(first.out / "hf"))["rl"].num_rows == 0
    hidden = [
        p.name for d in (first.out, first.plots) for p in d.iterdir() if p.name.startswith(".")
    ]
    assert hidden == []


def test_result_names_every_file_it_wrote(full: Run) -> None:
    assert full.result["accepted"] == 4
    assert full.result["rounds"] == full.rounds.height
    for path in [*full.result["paths"].values(), *full.result["plots"].values()]:
        assert Path(path).exists(), path


# --- plots ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["full", "empty"])
def test_every_plot_is_a_png_with_its_csv(which: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(which)
    for name in PLOTS:
        png = run.plots / f"{name}.png"
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5_000, name  # axes and text, not an empty canvas
        assert pl.read_csv(run.plots / f"{name}.csv").columns, name


def test_plot_data_counts_what_it_shows() -> None:
    accepted, rounds = make_tables()
    data = plot_data(accepted, rounds)
    assert data["scores"]["weak"].sum() == rounds["weak_mean"].drop_nulls().len()
    assert data["scores"]["strong"].sum() == rounds["strong_mean"].drop_nulls().len()
    assert data["gap"]["accepted"].sum() == accepted.height
    assert data["rounds_per_accepted"]["accepted"].sum() == accepted.height
    rejections = dict(data["rejections"].iter_rows())
    assert "accepted" not in rejections
    assert rejections["too_easy"] == 4
    assert rejections["infra_error"] == 1
    assert rejections["suspicious_zero"] == 0


def test_plot_data_of_empty_tables_has_zero_counts() -> None:
    accepted, rounds = empty_tables()
    data = plot_data(accepted, rounds)
    assert data["gap"]["accepted"].sum() == 0
    assert data["rounds_per_accepted"].is_empty()
    assert dict(data["rejections"].iter_rows())["judge_unreliable"] == 1


# --- dataset card -----------------------------------------------------------------------


def _front_matter(card: str) -> dict[str, Any]:
    _, header, _ = card.split("---\n", 2)
    return yaml.safe_load(header)


def test_card_has_hf_header_counts_recipe_and_lineage(full: Run) -> None:
    card = full.card
    meta = _front_matter(card)
    assert [c["config_name"] for c in meta["configs"]] == ["sft", "rl"]
    assert meta["configs"][0]["data_files"][0]["path"] == "sft.jsonl"
    assert "| accepted examples | 4 |" in card
    assert "| rounds run | 14 |" in card
    assert "| too_easy | 4 |" in card
    assert "min_gap: 0.2" in card  # the recipe, as YAML
    assert "`r3c1pe0hash0`" in card
    assert "`0123abc`" in card and "`feedbee`" in card  # git revs of rows and of the run
    assert "acme/big-70b" in card
    assert "Why this export is empty" not in card


def test_card_links_plots_by_relative_path(full: Run) -> None:
    links = [line for line in full.card.splitlines() if line.startswith("![")]
    assert len(links) == len(PLOTS)
    for link in links:
        rel = link[link.index("(") + 1 : -1]
        assert not Path(rel).is_absolute()
        assert (full.out / rel).resolve().is_file(), rel


def test_empty_export_writes_empty_files_and_an_empty_dataset(empty: Run, full: Run) -> None:
    assert (empty.out / "sft.jsonl").stat().st_size == 0
    assert (empty.out / "rl.jsonl").stat().st_size == 0
    loaded = datasets.load_from_disk(str(empty.out / "hf"))
    full_loaded = datasets.load_from_disk(str(full.out / "hf"))
    for split in ("sft", "rl"):
        assert loaded[split].num_rows == 0
        assert loaded[split].features == full_loaded[split].features
    assert empty.result["accepted"] == 0


def test_empty_card_says_why(empty: Run) -> None:
    card = empty.card
    assert "## Why this export is empty" in card
    assert "| accepted examples | 0 |" in card
    assert "judge_unreliable: 1" in card and "too_easy: 1" in card
    assert "smoke test" in card
    assert '"Using real models"' in card
    assert _front_matter(card)["size_categories"] == ["n<1K"]


def test_empty_card_with_real_models_does_not_blame_the_embedded_model(tmp_path: Path) -> None:
    recipe = json.loads(json.dumps(RECIPE))
    for role in recipe["models"].values():
        role["model"] = "acme/judge-8b"
    card = Run(tmp_path, empty_tables(), recipe).card
    assert EMBEDDED_MODEL not in card
    assert "smoke test" not in card
    assert '"Using real models"' in card
