"""Near-duplicate sections across documents (boilerplate) are skipped, naming the first copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autodata.errors import SourceError
from autodata.settings import Ingest
from tasks.ingest import ingest
from tasks.ingest_dedup import drop_near_duplicates, jaccard, section_uri, shingles

CFG = Ingest(max_section_chars=400, min_chars=40)
DISCLAIMER = (
    "This document is provided for general information only and does not constitute legal "
    "advice. The agency makes no warranty as to its accuracy, completeness or fitness for any "
    "particular purpose, and accepts no liability for decisions made in reliance on it. "
    "Reproduction is permitted provided the source is acknowledged in full and {year}."
)


def body(topic: str) -> str:
    return (
        f"The {topic} report explains how the {topic} programme allocated its budget over the "
        f"year and which of its {topic} goals were met, delayed or abandoned by the committee."
    )


def row(uri: str, section: int, text: str) -> dict[str, Any]:
    return {"uri": uri, "section": section, "text": text}


def test_boilerplate_repeated_with_small_edits_is_skipped_once_per_copy_naming_the_first(
    tmp_path: Path,
):
    for i, topic in enumerate(["water", "roads", "schools"]):
        text = f"{body(topic)}\n\n{DISCLAIMER.format(year=2020 + i)}\n"
        (tmp_path / f"{topic}.txt").write_text(f"{topic.title()} report\n{text}")
    sources, skipped = ingest(tmp_path, CFG)
    assert sorted(sources["uri"].unique()) == ["roads.txt", "schools.txt", "water.txt"]
    kept_disclaimers = sources.filter(sources["text"].str.contains("legal advice"))
    assert kept_disclaimers["uri"].to_list() == ["roads.txt"]  # the first file in order
    reasons = dict(zip(skipped["uri"], skipped["reason"], strict=True))
    assert set(reasons) == {"schools.txt#section=1", "water.txt#section=1"}
    for reason in reasons.values():
        assert reason.startswith("near-duplicate of roads.txt#section=1 (Jaccard ≈ 0.")


def test_different_sections_sharing_a_topic_are_all_kept():
    rows = [row(f"{t}.txt", 0, body(t)) for t in ("water", "roads", "schools")]
    kept, skips = drop_near_duplicates(rows)
    assert kept == rows and skips == []


def test_near_copies_inside_one_file_are_kept_sections_and_records_alike():
    rows = [row("a.txt", 0, DISCLAIMER.format(year=1)), row("a.txt", 1, DISCLAIMER.format(year=2))]
    assert drop_near_duplicates(rows) == (rows, [])
    records = [row(f"d.jsonl#record={i}", 0, DISCLAIMER.format(year=i)) for i in (1, 2)]
    assert drop_near_duplicates(records) == (records, [])  # a dataset's template, on purpose


def test_the_threshold_decides_and_the_reported_score_is_the_exact_jaccard():
    a, b = DISCLAIMER.format(year="2020"), DISCLAIMER.format(year="March 2021")
    score = jaccard(shingles(a), shingles(b))
    assert 0.8 < score < 1
    rows = [row("a.txt", 0, a), row("b.txt", 2, b)]
    kept, skips = drop_near_duplicates(rows, threshold=score)
    assert kept == rows[:1]
    assert skips[0].uri == "b.txt#section=2" and f"(Jaccard ≈ {score:.2f})" in skips[0].reason
    assert drop_near_duplicates(rows, threshold=min(1.0, score + 0.01))[1] == []


def test_each_copy_names_a_kept_section_never_a_skipped_one():
    texts = [DISCLAIMER.format(year=y) for y in ("one", "one two", "one two three")]
    kept, skips = drop_near_duplicates([row(f"{i}.txt", 0, t) for i, t in enumerate(texts)])
    assert [r["uri"] for r in kept] == ["0.txt"]
    assert all("near-duplicate of 0.txt#section=0" in s.reason for s in skips)


def test_cjk_text_is_compared_by_character_without_spaces():
    zh = "本文件仅供一般参考，不构成法律意见。本机构不保证其准确性、完整性或适用于任何特定用途，对依赖本文件作出的决定不承担责任。"
    assert len(shingles(zh)) > 40
    rows = [row("a.md", 0, zh), row("b.md", 0, zh.replace("仅", "只")), row("c.md", 0, "完全不同的内容，讲述水资源管理的预算与目标，以及委员会的决定。")]  # fmt: skip
    kept, skips = drop_near_duplicates(rows)
    assert [r["uri"] for r in kept] == ["a.md", "c.md"]
    assert [s.uri for s in skips] == ["b.md#section=0"]


def test_records_of_two_files_are_compared_and_addressed_by_record_and_section(tmp_path: Path):
    for name, year in (("c.jsonl", 2020), ("d.jsonl", 2021)):
        record = {"text": DISCLAIMER.format(year=year)}
        (tmp_path / name).write_text(f"{json.dumps({'text': body(name)})}\n{json.dumps(record)}\n")
    _, skipped = ingest(tmp_path, CFG)
    assert skipped["uri"].to_list() == ["d.jsonl#record=2&section=0"]
    assert skipped["reason"][0].startswith("near-duplicate of c.jsonl#record=2&section=0 (")
    with pytest.raises(SourceError, match=r"^d\.jsonl#record=2&section=0: near-duplicate of c"):
        ingest(tmp_path, CFG, strict=True)
    assert section_uri({"uri": "d.jsonl#record=2", "section": 0}) == "d.jsonl#record=2&section=0"


def test_sections_without_words_are_kept_and_never_matched():
    rows = [row("a.txt", 0, "— — —"), row("b.txt", 0, "— — —"), row("c.txt", 0, "…")]
    assert drop_near_duplicates(rows) == (rows, [])
