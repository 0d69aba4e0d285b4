"""Ingest time of one HTML file against its size: does parsing grow linearly?

Two shapes of page, each written at two sizes (1 MB and 5 MB; quick: 200 KB and 1 MB) and timed
through the real ingest core (``tasks.ingest.ingest``: read, parse, repair, sections, near-duplicate
check) in a fresh directory, best of ``repeats``:

- ``wide``: what made parsing quadratic before (225 KB took 46 s, 4.5 MB did not finish in 300 s):
  thousands of headings, paragraphs with footnote links, tables and nested lists side by side;
- ``deep``: paragraphs whose ``<p>`` is never closed, so the parser nests each in the one
  before it, a tree as deep as the page has paragraphs.

Headline ``ratio`` = seconds(large) ÷ seconds(small) of the wide page: 5 when linear (the sizes
are 5× apart), 25 when quadratic; target ≤ 6.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodata.settings import Ingest
from benchmarks import common
from tasks.ingest import ingest

SHAPES = ("wide", "deep")


@dataclass(frozen=True)
class Options:
    small_kb: int = 1024
    large_kb: int = 5120
    repeats: int = 2

    @staticmethod
    def quick() -> Options:
        return Options(small_kb=200, large_kb=1000, repeats=1)


def html_page(size: int, shape: str) -> str:
    """An HTML page of about ``size`` characters of the given shape (module doc)."""
    parts = ["<html><head><title>Lease notes</title></head><body><main><h1>Lease notes</h1>"]
    total, i = 0, 0
    while total < size:
        block = _wide_block(i) if shape == "wide" else _deep_block(i)
        parts.append(block)
        total, i = total + len(block), i + 1
    return "".join([*parts, "</main></body></html>"])


def _wide_block(i: int) -> str:
    return (
        f"<h2>Clause {i}</h2><p>The tenant of unit {i} paid the March rent on the twelfth. The "
        f"landlord served notice on the fifth day; the lease allows ten days to cure. Was the "
        f"notice valid under clause {i}.3?<sup><a href='#fn{i}'>{i % 97 + 1}</a></sup></p>"
        f"<table><tr><th>Month</th><th>Paid</th></tr><tr><td>March</td><td>{i}</td></tr>"
        f"<tr><td>April</td><td>{i + 1}</td></tr></table>"
        f"<ul><li>notice day {i}</li><li>cure period<ol><li>ten days</li></ol></li></ul>\n"
    )


def _deep_block(i: int) -> str:
    return (
        f"<p>Paragraph {i}: the tenant paid the rent for unit {i} twelve days late, and the "
        f"landlord's notice named clause {i}.3 of the lease.\n"
    )


def time_ingest(page: str, repeats: int) -> float:
    """Best wall seconds of ingesting ``page`` as the only file of a sources folder."""
    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="autodata-bench-parse-") as tmp:
        (Path(tmp) / "page.html").write_text(page, encoding="utf-8")
        for _ in range(repeats):
            start = time.perf_counter()
            ingest(Path(tmp), Ingest(max_parse_s=3600.0))
            best = min(best, time.perf_counter() - start)
    return best


def run(opts: Options) -> dict[str, Any]:
    """Time both shapes at both sizes; ``ratio`` = wide large ÷ wide small."""
    result: dict[str, Any] = {"machine": common.machine(), "options": opts.__dict__, "runs": []}
    for shape in SHAPES:
        seconds = []
        for kb in (opts.small_kb, opts.large_kb):
            page = html_page(kb * 1024, shape)
            wall = time_ingest(page, opts.repeats)
            seconds.append(wall)
            result["runs"].append({"shape": shape, "kb": kb, "chars": len(page), "wall_s": wall,
                                   "mb_per_s": len(page) / 2**20 / wall})  # fmt: skip
        result[f"{shape}_ratio"] = seconds[1] / seconds[0]
    result["size_ratio"] = opts.large_kb / opts.small_kb
    result["ratio"] = result["wide_ratio"]
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table: seconds and MB/s per shape and size, then the ratios."""
    out: list[tuple[str, Any]] = []
    for r in result["runs"]:
        out.append((f"{r['shape']} {r['kb']} KB: seconds", r["wall_s"]))
        out.append((f"{r['shape']} {r['kb']} KB: MB/s", r["mb_per_s"]))
    size = result["size_ratio"]
    out.append((f"deep: large ÷ small seconds (linear {size:g})", result["deep_ratio"]))
    return [*out, (f"ratio: wide large ÷ small seconds (linear {size:g})", result["ratio"])]
