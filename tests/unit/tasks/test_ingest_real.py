"""The corpus of public-domain documents in tests/data/real (origins in its README.md) reads the
way a person reads it: no word lost or cut, sections ending at sentence or paragraph ends,
headings with their content, no running heads, page numbers or navigation, table cells apart
and footnote numbers readable."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import polars as pl
import pytest

from autodata.settings import Ingest
from tasks.ingest import ingest
from tasks.ingest_sections import is_lead
from tasks.ingest_text import split_footnotes

REAL = Path(__file__).resolve().parents[2] / "data" / "real"
CORPUS = REAL / "corpus"
SMALL = Ingest(max_section_chars=1200)  # many boundaries to check in a small corpus
SENTENCE_END = re.compile(r"[.!?:;][\"”’)\]\d]*$")


@pytest.fixture(scope="module", params=[SMALL, Ingest()], ids=["1200-chars", "default"])
def sources(request: pytest.FixtureRequest) -> pl.DataFrame:
    frame, skipped = ingest(CORPUS, request.param)
    assert skipped.is_empty(), skipped.rows()
    return frame


def sections(sources: pl.DataFrame, uri: str) -> list[str]:
    return sources.filter(pl.col("uri") == uri).sort("section")["text"].to_list()


def words(text: str) -> str:
    return " ".join(re.findall(r"[A-Za-z']+", text))


def test_every_file_is_read_with_the_title_a_person_would_give_it(sources: pl.DataFrame):
    titles = dict(sources.select("uri", "title").unique().rows())
    assert titles == {
        "constitution_article_1.html": "The Constitution: Article I, Sections 1–3 | A Transcription",
        "declaration_of_independence.pdf": "The Declaration of Independence",
        "gettysburg_address.md": "The Gettysburg Address",
        "marbury_slip_opinion.txt": "(Slip Opinion) FEBRUARY TERM, 1803",
    }


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("marbury_slip_opinion.txt", "marbury_excerpt.txt"),
        ("declaration_of_independence.pdf", "declaration_of_independence.txt"),
    ],
)
def test_the_text_runs_on_across_pages_without_a_lost_or_cut_word_or_page_furniture(
    sources: pl.DataFrame, uri: str, source: str
):
    """The words of the plain text appear in the same order with nothing between them: no
    running head, page number, footnote or half word at a page break."""
    original = words(re.sub(r"\[\d\]", "", (REAL / source).read_text()))
    assert original in words("\n".join(sections(sources, uri)))


def test_sections_end_at_a_sentence_or_paragraph_end_never_mid_word(sources: pl.DataFrame):
    for uri in sources["uri"].unique(maintain_order=True):
        texts = sections(sources, uri)
        for before, after in itertools.pairwise(texts):
            assert SENTENCE_END.search(before), (uri, before[-80:])
            assert not after[0].islower(), (uri, after[:80])


def test_headings_stay_with_their_content(sources: pl.DataFrame):
    for text in sources["text"]:
        last = re.split(r"\n\s*\n", text.strip())[-1]
        assert not is_lead(last) or text == last, text[-120:]
    md = "\n".join(sections(sources, "gettysburg_address.md"))
    assert "## The five manuscript copies\n\nThe address survives" in md
    html = sections(sources, "constitution_article_1.html")
    for heading in ("Section. 1.", "Section. 2.", "Section. 3."):
        holder = next(t for t in html if heading in t)
        assert holder.index(heading) + len(heading) < len(holder) - 40  # its text follows


def test_no_running_heads_page_numbers_navigation_or_page_title_in_the_text(
    sources: pl.DataFrame,
):
    text = "\n".join(sources["text"])
    for furniture in [
        "Opinion of the Court", "Cite as:", "MARBURY v. MADISON\n",  # slip opinion heads
        "A Transcription", "Page 1", "Page 4",  # the PDF's running head and foot
        "Skip to main content", "Here's how you know", "Research Our Records", "In this section",
        "Privacy Policy", "College Park", "Back to citation", "Back to top", "Founding Documents",
        "license: public domain", "---",  # markdown front matter
    ]:  # fmt: skip
        assert furniture not in text, furniture
    assert not re.search(r"^\s*(?:Page\s+)?\d{1,2}\s*$", text, re.M)


def test_html_table_cells_and_rows_stay_apart(sources: pl.DataFrame):
    html = "\n".join(sections(sources, "constitution_article_1.html"))
    assert "State | Representatives\nNew Hampshire | 3\nMassachusetts | 8\n" in html
    assert "\nRhode-Island and Providence Plantations | 1\n" in html
    assert "\nVirginia | 10\n" in html and "\nTotal | 65" in html


def test_footnote_numbers_stay_readable(sources: pl.DataFrame):
    html = "\n".join(sections(sources, "constitution_article_1.html"))
    assert "three fifths of all other Persons.[1] The actual Enumeration" in html
    assert "\n1. Changed by section 2 of the Fourteenth Amendment.\n" in html
    slip = "\n".join(sections(sources, "marbury_slip_opinion.txt"))
    assert re.search(r"paramount law of\s+the\s+nation,1 and consequently", slip)
    notes = slip[slip.index("1 U. S. Const.") :]  # the notes follow the opinion, one a line
    assert notes.splitlines()[0] == "1 U. S. Const., Art. VI, cl. 2."
    assert "\n4 U. S. Const., Art. III, § 3, cl. 1." in notes
    md = "\n".join(sections(sources, "gettysburg_address.md"))
    assert "battle-field of that war.[^1] We have" in md
    assert "[^1]: The Battle of Gettysburg was fought on July 1–3, 1863." in md


def test_list_numbers_and_markdown_front_matter(sources: pl.DataFrame):
    md = "\n".join(sections(sources, "gettysburg_address.md"))
    assert "\n1. The Nicolay copy" in md and "\n5. The Bliss copy" in md
    row = sources.filter(pl.col("uri") == "gettysburg_address.md").row(0, named=True)
    assert json.loads(row["metadata"]) == {
        "author": "Abraham Lincoln", "date": "1863-11-19", "copy": "Bliss", "license": "public domain"
    }  # fmt: skip


def test_a_footnote_block_at_the_foot_of_a_page_is_set_apart_only_after_a_rule():
    page = "text of the page runs on to the next\n  ________\n  1 See Art. III.\n  2 Id."
    assert split_footnotes(page) == (
        "text of the page runs on to the next",
        "1 See Art. III.\n2 Id.",
    )
    caption = "SUPREME COURT\n  _________\n  MARBURY v. MADISON"  # a rule, but no note after it
    assert split_footnotes(caption) == (caption, "")


def test_the_corpus_stays_small():
    assert sum(p.stat().st_size for p in REAL.rglob("*") if p.is_file()) < 1_000_000
