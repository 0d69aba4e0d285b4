"""Reading a source takes time linear in its size (issue 12, item 5; figures: ``autodata bench
parse``). HTML is measured in Python lines executed, which no machine load changes: 4× the page,
about 4× the work (the tree edits of the old renderer made it 5-14×). The spots that were
quadratic inside C (regular expressions, a line rescanned per sentence) are run on inputs the old
code needed minutes or hours for."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tasks.ingest_html import html_to_text
from tasks.ingest_sections import sentence_ends, split_sections
from tasks.ingest_text import dehyphenate, heading_title, repair

LINEAR = 4.6  # work(4n) / work(n): 4 when linear, plus a little for fixed costs


def lines_executed(read: Callable[[str], object], text: str) -> int:
    """Python lines ``read(text)`` executes (its work, whatever the machine's load)."""
    count = 0

    def trace(frame: object, event: str, arg: object) -> object:
        nonlocal count
        count += event == "line"
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)  # type: ignore[arg-type]
    try:
        read(text)
    finally:
        sys.settrace(previous)
    return count


def page(size: int, block: Callable[[int], str]) -> str:
    parts, i = ["<html><head><title>T</title></head><body><main><h1>Notes</h1>"], 0
    while sum(map(len, parts)) < size:
        parts.append(block(i))
        i += 1
    return "".join([*parts, "</main></body></html>"])


def wide(i: int) -> str:
    """Headings, paragraphs with footnote links, tables and nested lists side by side."""
    return (
        f"<h2>Clause {i}</h2><p>The tenant paid late. Was notice valid under clause {i}.3?"
        f"<sup><a href='#fn{i}'>{i % 97 + 1}</a></sup></p><table><tr><th>Month</th><th>Paid</th>"
        f"</tr><tr><td>March</td><td>{i}</td></tr></table><ul><li>day {i}</li><li>cure<ol><li>"
        "ten days</li></ol></li></ul>\n"
    )


def deep(i: int) -> str:
    """A paragraph whose <p> is never closed: the parser nests each in the one before."""
    return f"<p>Paragraph {i}: the tenant paid the rent for unit {i} twelve days late.\n"


@pytest.mark.parametrize(("block", "small"), [(wide, 30_000), (deep, 20_000)], ids=["wide", "deep"])
def test_html_work_grows_linearly_with_the_page(block: Callable[[int], str], small: int):
    one, four = (lines_executed(html_to_text, page(n, block)) for n in (small, 4 * small))
    assert four / one < LINEAR, (one, four)


def test_a_deep_page_is_read_whole():
    _, text = html_to_text(page(200_000, deep))
    assert text.count("twelve days late") == text.count("Paragraph ") > 2500


@pytest.mark.timeout(60, method="thread")
def test_a_long_run_of_letters_is_dehyphenated_at_once():
    letters = "ACGT" * 25_000  # a gene sequence: 100,000 letters, no hyphen (old: hours)
    text = f"{letters} fac-\ntors and well-known terms"
    assert dehyphenate(text) == f"{letters} factors and well-known terms"
    assert repair(letters) == letters


@pytest.mark.timeout(60, method="thread")
def test_a_long_line_is_searched_for_a_heading_at_once():
    line = "word " * 200_000  # one 1 MB line (old: hours)
    assert heading_title(f"{line}\n\nTitle\n=====\n") == "Title"
    assert heading_title("# Notes on leases ##\n") == "Notes on leases"


@pytest.mark.timeout(60, method="thread")
def test_a_long_line_of_sentences_is_cut_at_once():
    text = "Word one. " * 60_000  # 600 KB on one line (old: minutes)
    assert len(list(sentence_ends(text))) == 60_000
    sections = split_sections(text, 3000, 40)
    assert "".join(s.replace(" ", "") for s in sections) == text.replace(" ", "")
    assert all(len(s) <= 3000 for s in sections)
