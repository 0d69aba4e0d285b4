"""Near-duplicate sections across documents: the same disclaimer, licence or footer in many files.

Exact repeats are dropped by :func:`tasks.ingest.ingest` (same ``source_id``); this catches the
copies that differ a little (a year, a name, a reflowed line). Each section is reduced to its
word 5-grams (a CJK character counts as a word, so scripts without spaces work alike); MinHash
LSH (``datasketch``) proposes earlier sections that may be similar, and the exact Jaccard
similarity of the two 5-gram sets decides. A section is compared only with sections that were
kept, in the order given (file, record, section), and only with those of other files, so the
first copy stays and every later one becomes a skipped row naming it::

    b.txt#section=3   near-duplicate of a.txt#section=0 (Jaccard ≈ 0.93)

Records of one ``.jsonl``/``.parquet`` file are not compared with each other: a dataset's records
may share a template on purpose (the same word problem with other numbers), and deduplicating a
dataset is its author's call; two files holding the same records are caught.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from datasketch import LeanMinHash, MinHash, MinHashLSH

from tasks.ingest_readers import Skip

THRESHOLD = 0.8  # Jaccard of word 5-grams: a one-word edit in a 60-word disclaimer scores ~0.85
SHINGLE_WORDS = 5
NUM_PERM = 128
_LSH_THRESHOLD = 0.6  # below THRESHOLD: LSH only proposes, the exact Jaccard decides
_CHUNK = 1000  # MinHashes computed per batch (bounded memory on large corpora)
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def drop_near_duplicates(
    rows: list[dict[str, Any]], threshold: float = THRESHOLD
) -> tuple[list[dict[str, Any]], list[Skip]]:
    """Split section ``rows`` (dicts with ``uri``, ``section``, ``text``) into the rows kept and
    one :class:`Skip` per section whose Jaccard similarity to a kept section of another file is
    at least ``threshold`` (module doc). Order is kept; the first copy wins."""
    lsh = MinHashLSH(threshold=min(_LSH_THRESHOLD, threshold), num_perm=NUM_PERM)
    kept: list[dict[str, Any]] = []
    skips: list[Skip] = []
    for row, signature in zip(rows, _signatures(rows), strict=True):
        candidates = [kept[k] for k in sorted(lsh.query(signature))] if signature else []
        match = _best_match(row, candidates, threshold)
        if match is not None:
            skips.append(Skip(section_uri(row), _reason(*match)))
            continue
        if signature:  # a section without words is never a near-duplicate
            lsh.insert(len(kept), signature)
        kept.append(row)
    return kept, skips


def section_uri(row: dict[str, Any]) -> str:
    """Where one section lives: ``a.txt#section=2``, ``d.jsonl#record=3&section=0``."""
    joiner = "&" if "#" in row["uri"] else "#"
    return f"{row['uri']}{joiner}section={row['section']}"


def shingles(text: str) -> set[str]:
    """The word 5-grams of ``text`` (lowercased; each CJK character is a word); a text shorter
    than five words is one shingle."""
    words = _TOKEN.findall(text.lower())
    n = min(SHINGLE_WORDS, len(words))
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)} if words else set()


def jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 for two empty sets."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _signatures(rows: list[dict[str, Any]]) -> Iterator[LeanMinHash | None]:
    """One MinHash per row (None for a row without words), computed a chunk at a time."""
    for start in range(0, len(rows), _CHUNK):
        chunk = [[s.encode() for s in shingles(r["text"])] for r in rows[start : start + _CHUNK]]
        hashed = MinHash.bulk(chunk, num_perm=NUM_PERM)
        yield from (
            LeanMinHash(m) if words else None for m, words in zip(hashed, chunk, strict=True)
        )


def _best_match(
    row: dict[str, Any], candidates: list[dict[str, Any]], threshold: float
) -> tuple[dict[str, Any], float] | None:
    others = [c for c in candidates if _file(c) != _file(row)]
    if not others:
        return None
    mine = shingles(row["text"])
    scored = [(c, jaccard(mine, shingles(c["text"]))) for c in others]
    best = max(scored, key=lambda pair: pair[1])  # the earliest of equals
    return best if best[1] >= threshold else None


def _file(row: dict[str, Any]) -> str:
    return str(row["uri"]).split("#", 1)[0]


def _reason(original: dict[str, Any], score: float) -> str:
    return (
        f"near-duplicate of {section_uri(original)} (Jaccard ≈ {score:.2f}); boilerplate repeated "
        "across documents is kept once, at its first occurrence"
    )
