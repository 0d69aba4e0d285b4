"""The dataset card's scores: the fresh re-scoring is the headline, selection-time beside it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from builders import accepted_row

from autodata import schemas
from tasks.card import dataset_card


def _card(rows: list[dict]) -> str:
    accepted = pl.DataFrame(rows, schema=schemas.ACCEPTED)
    rounds = accepted.select("candidate_id", "source_id", "round").with_columns(
        decision=pl.lit("accepted"), recipe_hash=pl.lit("r")
    )
    rounds = pl.concat([schemas.empty(schemas.ROUNDS), rounds], how="diagonal")
    return dataset_card(accepted, rounds, {}, {}, {}, Path("out"))


def test_fresh_figures_are_the_headline_with_selection_beside_them() -> None:
    rows = [accepted_row(i, weak_mean=0.3, strong_mean=0.8, gap=0.5, fresh_weak_mean=0.4,
                         fresh_strong_mean=0.7, fresh_gap=0.3 if i else 0.05, fresh_flag=not i)
            for i in range(4)]  # fmt: skip
    card = _card(rows)
    header = "| score | fresh mean | fresh median | at selection: mean | at selection: median |"
    assert header in card
    assert "| gap | 0.237 | 0.300 | 0.500 | 0.500 |" in card
    assert "| weak_mean | 0.400 | 0.400 | 0.300 | 0.300 |" in card
    assert "4 of 4 accepted items re-solved" in card and "1 item(s) have a fresh gap below" in card


def test_without_fresh_re_scoring_the_card_says_the_gap_is_inflated() -> None:
    card = _card([accepted_row(i) for i in range(2)])
    assert "| score | mean | median |" in card
    assert "no fresh re-scoring" in card and "overstate the gap" in card
