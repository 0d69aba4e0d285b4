"""The training / validation split: deterministic, disjoint, stable as the corpus grows."""

from __future__ import annotations

from tasks.optimize_split import TRAIN, VALIDATION, assign, ids_of

IDS = [f"{i:016x}" for i in range(300)]


def test_the_split_is_deterministic_disjoint_and_near_its_share() -> None:
    split = assign(IDS, 0.34, seed=0)
    assert dict(split.iter_rows()) == dict(assign(list(reversed(IDS)), 0.34, seed=0).iter_rows())
    train, validation = ids_of(split, TRAIN, IDS), ids_of(split, VALIDATION, IDS)
    assert not set(train) & set(validation) and set(train) | set(validation) == set(IDS)
    assert 0.25 < len(validation) / len(IDS) < 0.43
    assert ids_of(assign(IDS, 0.34, seed=1), VALIDATION, IDS) != validation


def test_a_stored_split_keeps_its_sides_as_sources_arrive() -> None:
    first = assign(IDS[:50], 0.34, seed=0)
    grown = assign(IDS, 0.34, seed=0, stored=first)
    for side in (TRAIN, VALIDATION):
        assert set(ids_of(first, side, IDS[:50])) == set(ids_of(grown, side, IDS[:50]))
    moved = first.with_columns(split=first["split"].reverse())  # a stored side wins over the rule
    assert ids_of(assign(IDS[:50], 0.34, 0, stored=moved), TRAIN, IDS[:50]) == ids_of(
        moved, TRAIN, IDS[:50]
    )


def test_a_tiny_corpus_gets_a_source_on_each_side() -> None:
    for share in (0.01, 0.99):
        split = assign(IDS[:2], share, seed=0)
        assert sorted(split["split"].to_list()) == [TRAIN, VALIDATION]
    assert assign(IDS[:1], 0.5, seed=0).height == 1
