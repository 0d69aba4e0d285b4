"""Training / validation split of the sources for meta-optimization: deterministic and disjoint.

A source is held out for validation when ``unit(seed, source_id) < share`` (a SHA-256 of its id,
so it does not depend on the order or on the other sources). Once written, a split is kept:
sources seen before keep their side, new ones are placed by the same rule, so growing the corpus
never moves a validation source into training (where the analyzer would read it). With no
source on one side, the source nearest the threshold moves over (tiny corpora only).

Frame: ``source_id`` (str), ``split`` (``train`` | ``validation``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import polars as pl

SCHEMA = pl.Schema({"source_id": pl.String, "split": pl.String})
TRAIN, VALIDATION = "train", "validation"


def unit(seed: int, source_id: str) -> float:
    """A number in [0, 1) from the source's id."""
    digest = hashlib.sha256(f"split|{seed}|{source_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(
    source_ids: Sequence[str], share: float, seed: int, stored: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The split of ``stored``'s sources (sides kept) and of ``source_ids`` (new ones placed by
    the hash rule)."""
    sides: dict[str, str] = dict(stored.iter_rows()) if stored is not None else {}
    for sid in source_ids:
        sides.setdefault(sid, _side(unit(seed, sid), share))
    if len(sides) >= 2 and len(set(sides.values())) == 1:
        only = next(iter(sides.values()))
        pick = (min if only == TRAIN else max)(sides, key=lambda sid: unit(seed, sid))
        sides[pick] = VALIDATION if only == TRAIN else TRAIN
    return pl.DataFrame({"source_id": list(sides), "split": list(sides.values())}, schema=SCHEMA)


def _side(u: float, share: float) -> str:
    return VALIDATION if u < share else TRAIN


def ids_of(split: pl.DataFrame, side: str, present: Sequence[str]) -> list[str]:
    """The ids of ``present`` sources on ``side``, sorted."""
    chosen = split.filter((pl.col("split") == side) & pl.col("source_id").is_in(list(present)))
    return sorted(chosen["source_id"].to_list())
