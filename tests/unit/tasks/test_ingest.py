"""Unit tests for the ingest stage: every fixture file is generated here, in tmp_path."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from pypdf import PdfWriter
from pypdf.generic import ContentStream, DictionaryObject, NameObject
from typer.testing import CliRunner

from autodata import schemas
from autodata.cli import app
from autodata.errors import SourceError
from autodata.settings import Ingest, Paths
from tasks.ingest import (
    SUPPORTED,
    ingest,
    ingest_to_files,
    new_or_changed,
    skipped_lines,
    split_sections,
)
from tasks.ingest_sections import is_lead, sentence_ends

REPO = Path(__file__).resolve().parents[3]
CFG = Ingest()
GOOD = "A sentence that is long enough to pass the minimum length check easily. " * 2
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def prose(tag: str) -> str:
    """A text long enough for a section that shares no word 5-gram with another tag's, so two
    files are never near-duplicates of each other (as ``GOOD`` plus a suffix would be)."""
    return f"Notes on {tag}: the {tag} file says what {tag} is for and why {tag} matters. "


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def make_pdf(
    lines: list[str],
    *,
    title: str | None = None,
    password: str | None = None,
    pages: list[list[str]] | None = None,
    raw: str | None = None,
) -> bytes:
    """A real PDF with a Helvetica text layer: one page of ``lines`` (or ``pages``, one list of
    lines each; or the content stream ``raw``), optionally with a title and encrypted."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for page_lines in pages or [lines]:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        ops = " ".join(f"({line}) Tj 0 -14 Td" for line in page_lines)
        content = ContentStream(None, writer)
        content.set_data((raw or f"BT /F1 12 Tf 72 720 Td {ops} ET").encode())
        page.replace_contents(content)
    if title:
        writer.add_metadata({"/Title": title})
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner-secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def skipped_reasons(skipped: pl.DataFrame) -> dict[str, str]:
    return dict(zip(skipped["uri"], skipped["reason"], strict=True))


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- formats that load -------------------------------------------------------------------


def test_text_and_markdown_are_sources_with_title_domain_and_normalized_text(tmp_path: Path):
    write(tmp_path, "notes.txt", b"Plain title line\r\n\r\n\r\n\r\n" + GOOD.encode() + b"   \r\n")
    write(tmp_path, "legal/case.md", f"# The Case Heading\n\n{GOOD}\n")
    sources, skipped = ingest(tmp_path, CFG, now=NOW)
    assert skipped.is_empty()
    assert sources.schema == schemas.SOURCES
    rows = {r["uri"]: r for r in sources.iter_rows(named=True)}
    assert rows["notes.txt"]["title"] == "Plain title line"
    assert rows["notes.txt"]["domain"] == "general"
    assert rows["notes.txt"]["text"] == f"Plain title line\n\n{GOOD.rstrip()}"
    assert rows["legal/case.md"]["title"] == "The Case Heading"
    assert rows["legal/case.md"]["domain"] == "legal"
    assert rows["legal/case.md"]["ingested_at"] == NOW
    assert all(r["n_chars"] == len(r["text"]) for r in rows.values())


def test_utf8_bom_is_dropped(tmp_path: Path):
    write(tmp_path, "bom.txt", "\ufeff".encode() + GOOD.encode())
    sources, _ = ingest(tmp_path, CFG)
    assert sources["text"][0] == GOOD.strip()


def test_html_drops_script_and_style_keeps_title_and_paragraphs(tmp_path: Path):
    html = f"""<!DOCTYPE html><html><head><title> Page  Title </title>
    <style>p {{ color: red; }}</style><script>var secret = 1;</script></head>
    <body><!-- a comment --><h1>Heading</h1>
    <p>First paragraph with <b>bold</b>
       words. {GOOD}</p><p>Second paragraph.</p><script>alert("x")</script></body></html>"""
    write(tmp_path, "web/page.html", html)
    sources, skipped = ingest(tmp_path, CFG)
    assert skipped.is_empty()
    row = sources.row(0, named=True)
    assert row["title"] == "Page Title"
    assert row["text"] == (
        f"Heading\n\nFirst paragraph with bold words. {GOOD.strip()}\n\nSecond paragraph."
    )
    for leaked in ("secret", "alert", "color", "comment", "DOCTYPE", "Page Title"):
        assert leaked not in row["text"]


def test_pdf_text_layer_and_metadata_title(tmp_path: Path):
    lines = ["Clause 4 sets out the notice period.", "It runs for thirty days after delivery."]
    write(tmp_path, "legal/contract.pdf", make_pdf(lines, title="Supply Contract"))
    sources, skipped = ingest(tmp_path, CFG)
    assert skipped.is_empty()
    row = sources.row(0, named=True)
    assert row["title"] == "Supply Contract"
    assert row["text"] == "\n".join(lines)
    assert row["uri"] == "legal/contract.pdf"


def test_pdf_with_only_an_owner_password_is_read(tmp_path: Path):
    write(
        tmp_path,
        "open.pdf",
        make_pdf(["Readable by anyone without a password at all."], password=""),
    )
    sources, _ = ingest(tmp_path, CFG)
    assert sources["text"].to_list() == ["Readable by anyone without a password at all."]


def test_jsonl_one_source_per_record_with_optional_title_and_domain(tmp_path: Path):
    lines = [
        json.dumps({"text": GOOD + "one", "title": "First", "domain": "physics"}),
        "",  # blank lines are not records, but keep line numbering
        json.dumps({"text": GOOD + "three"}),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"body": GOOD}),
        json.dumps({"text": None}),
    ]
    write(tmp_path, "data/recs.jsonl", "\n".join(lines) + "\n")
    sources, skipped = ingest(tmp_path, CFG)
    assert sources["uri"].to_list() == ["data/recs.jsonl#record=1", "data/recs.jsonl#record=3"]
    assert sources["title"].to_list() == ["First", "recs #3"]
    assert sources["domain"].to_list() == ["physics", "data"]
    reasons = skipped_reasons(skipped)
    assert reasons["data/recs.jsonl#record=4"].startswith("not valid JSON")
    assert reasons["data/recs.jsonl#record=5"].startswith("not a JSON object (got list)")
    assert reasons["data/recs.jsonl#record=6"] == "record has no 'text' field"
    assert reasons["data/recs.jsonl#record=7"] == "'text' is null, not text"
    assert len(reasons) == 4


def test_parquet_records_in_natural_order_with_custom_text_column(tmp_path: Path):
    frame = pl.DataFrame(
        {"body": [f"{GOOD} number {i}" for i in range(1, 13)], "title": [None] + ["T"] * 11}
    )
    write(tmp_path, "corpus.parquet", parquet_bytes(frame))
    sources, skipped = ingest(tmp_path, Ingest(text_column="body"))
    assert skipped.is_empty()
    assert sources["uri"].to_list() == [f"corpus.parquet#record={i}" for i in range(1, 13)]
    assert sources["text"][11].endswith("number 12")
    assert sources["title"][0] == "corpus #1"
    assert sources["title"][1] == "T"


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_missing_text_column_is_one_row_naming_file_column_and_setting(tmp_path: Path, ext: str):
    records = [{"body": GOOD}, {"body": GOOD + "2"}]
    content = (
        "\n".join(json.dumps(r) for r in records)
        if ext == "jsonl"
        else parquet_bytes(pl.DataFrame(records))
    )
    write(tmp_path, f"recs.{ext}", content)
    write(tmp_path, "ok.txt", GOOD)
    _, skipped = ingest(tmp_path, CFG)
    assert skipped["uri"].to_list() == [f"recs.{ext}"]
    reason = skipped["reason"][0]
    assert "'text'" in reason
    assert "body" in reason
    assert "ingest.text_column" in reason


def test_parquet_text_column_that_is_not_a_string(tmp_path: Path):
    write(tmp_path, "nums.parquet", parquet_bytes(pl.DataFrame({"text": [1, 2]})))
    write(tmp_path, "ok.txt", GOOD)
    _, skipped = ingest(tmp_path, CFG)
    assert skipped_reasons(skipped) == {
        "nums.parquet": "column 'text' is Int64, not text; set ingest.text_column to a text column"
    }


# --- files that are skipped, one reason class each ------------------------------------------

BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty.txt", b"", r"^empty file$"),
    ("blank.md", b"  \n\n\t \n", r"^only whitespace, no text$"),
    ("short.txt", b"tiny", r"^too short \(4 chars < ingest\.min_chars=40\)$"),
    ("binary.txt", b"abcde\x00\x01\x02" + GOOD.encode(), r"^binary data \(NUL byte at offset 5\)"),
    (
        "latin1.md",
        ("Un caf" + "é" + " " + GOOD).encode("latin-1"),
        r"^not UTF-8 \(byte 0xe9 at offset 6\); re-save as UTF-8$",
    ),
    ("page.html", "<p>caf\xe9</p>".encode("latin-1") + GOOD.encode(), r"^not UTF-8 \(byte 0xe9"),
    ("doc.docx", b"PK\x03\x04 zip", r"^unsupported extension \.docx \(supported: \.htm, \.html,"),
    ("Makefile", GOOD.encode(), r"^unsupported extension \(none\)"),
    ("broken.pdf", b"%PDF-1.7 this is not really a pdf", r"^unreadable PDF"),
    ("secret.pdf", b"", r"^encrypted PDF"),  # content generated in the test
    ("empty.jsonl", b"\n \n", r"^only whitespace, no JSON lines$"),
    ("junk.parquet", b"PAR1 not parquet", r"^unreadable parquet"),
]


@pytest.mark.parametrize(("name", "content", "pattern"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_one_skipped_row_with_its_reason(
    tmp_path: Path, name: str, content: bytes, pattern: str
):
    if name == "secret.pdf":
        content = make_pdf(["Confidential clause text that is long enough."], password="pw")
    write(tmp_path, f"sub/{name}", content)
    write(tmp_path, "good.txt", GOOD)
    sources, skipped = ingest(tmp_path, CFG)
    assert sources["uri"].to_list() == ["good.txt"]
    assert skipped["uri"].to_list() == [f"sub/{name}"]
    assert re.search(pattern, skipped["reason"][0]), skipped["reason"][0]


def test_unsupported_extension_lists_every_supported_one(tmp_path: Path):
    write(tmp_path, "x.rtf", GOOD)
    write(tmp_path, "good.txt", GOOD)
    _, skipped = ingest(tmp_path, CFG)
    assert skipped["reason"][0] == f"unsupported extension .rtf (supported: {', '.join(SUPPORTED)})"


def test_file_over_max_file_mb_is_skipped_without_reading(tmp_path: Path):
    write(tmp_path, "big.txt", GOOD * 40)  # ~5.8 kB
    write(tmp_path, "small.txt", GOOD)
    sources, skipped = ingest(tmp_path, Ingest(max_file_mb=0.004))
    assert sources["uri"].to_list() == ["small.txt"]
    assert re.match(
        r"too large \(0\.00\d+ MB > ingest\.max_file_mb=0\.004\); split the file",
        skipped["reason"][0],
    )


def test_unreadable_entry_is_skipped(tmp_path: Path):
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "does-not-exist.txt")
    write(tmp_path, "good.txt", GOOD)
    _, skipped = ingest(tmp_path, CFG)
    assert skipped_reasons(skipped) == {
        "dangling.txt": "unreadable (No such file or directory); check the file and its permissions"
    }


def test_hidden_files_and_directories_are_ignored_silently(tmp_path: Path):
    write(tmp_path, ".hidden.txt", GOOD + "hidden")
    write(tmp_path, ".git/objects/blob.txt", GOOD + "git")
    write(tmp_path, "legal/.DS_Store", b"\x00\x01")
    write(tmp_path, "legal/ok.md", GOOD)
    sources, skipped = ingest(tmp_path, CFG)
    assert sources["uri"].to_list() == ["legal/ok.md"]
    assert skipped.is_empty()


def test_symlinked_directory_is_followed_once_without_looping(tmp_path: Path):
    write(tmp_path, "real/a.md", GOOD)
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    sources, skipped = ingest(tmp_path, CFG)
    assert sources["uri"].to_list() == ["real/a.md"]
    assert skipped.is_empty()


# --- whole-run errors ----------------------------------------------------------------------


def test_strict_mode_raises_on_first_bad_file_naming_it(tmp_path: Path):
    write(tmp_path, "a_good.txt", GOOD)
    write(tmp_path, "b_bad.txt", b"\xc3\x28" + GOOD.encode())  # (\xff\xfe is a UTF-16 mark)
    with pytest.raises(SourceError) as err:
        ingest(tmp_path, CFG, strict=True)
    msg = str(err.value)
    assert msg.startswith("b_bad.txt: not UTF-8 (byte 0xc3 at offset 0)")
    assert msg.endswith("rerun without --strict to skip it")
    sources, skipped = ingest(tmp_path, CFG, strict=False)
    assert (sources.height, skipped.height) == (1, 1)


def test_strict_mode_passes_clean_sources(tmp_path: Path):
    write(tmp_path, "a.txt", GOOD)
    sources, skipped = ingest(tmp_path, CFG, strict=True)
    assert (sources.height, skipped.height) == (1, 0)


def test_missing_directory_raises_with_fix(tmp_path: Path):
    with pytest.raises(SourceError, match=r"nope not found; put \.txt/.*or set paths\.sources"):
        ingest(tmp_path / "nope", CFG)


def test_empty_directory_raises(tmp_path: Path):
    write(tmp_path, ".gitkeep", "")
    with pytest.raises(SourceError, match=r"no source files in .*hidden files are ignored"):
        ingest(tmp_path, CFG)


def test_directory_with_only_bad_files_raises_with_counts_and_reasons(tmp_path: Path):
    write(tmp_path, "a.docx", b"zip")
    write(tmp_path, "b.txt", b"")
    with pytest.raises(SourceError) as err:
        ingest(tmp_path, CFG)
    msg = str(err.value)
    assert "all 2 files were skipped" in msg
    assert "a.docx: unsupported extension .docx" in msg
    assert "b.txt: empty file" in msg
    assert "set paths.sources" in msg


# --- ids, order, sections, dedupe ------------------------------------------------------------


def corpus(root: Path, order: list[str]) -> None:
    texts = {
        "legal/a.md": f"# A\n\n{prose('alpha')}",
        "cs/b.txt": f"B\n\n{prose('beta')}",
        "top.md": prose("gamma"),
    }
    for rel in order:
        write(root, rel, texts[rel])


def test_ids_are_stable_across_runs_order_mtime_and_directory(tmp_path: Path):
    corpus(tmp_path / "one", ["legal/a.md", "cs/b.txt", "top.md"])
    corpus(tmp_path / "two", ["top.md", "cs/b.txt", "legal/a.md"])  # other creation order/mtimes
    first, _ = ingest(tmp_path / "one", CFG, now=NOW)
    again, _ = ingest(tmp_path / "one", CFG, now=NOW)
    other, _ = ingest(tmp_path / "two", CFG, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert first.equals(again)
    cols = ["uri", "source_id", "doc_id", "section", "text"]
    assert first.select(cols).equals(other.select(cols))
    assert first["uri"].to_list() == ["cs/b.txt", "legal/a.md", "top.md"]


def test_ids_are_content_hashes_of_normalized_text(tmp_path: Path):
    write(tmp_path, "lf/x.txt", f"Title\n\n{GOOD}\n")
    write(tmp_path, "crlf/x.txt", f"Title\r\n\r\n{GOOD}  \r\n\r\n\r\n")
    sources, skipped = ingest(tmp_path, CFG)
    text = f"Title\n\n{GOOD.strip()}"
    doc_id = sha16(text)
    assert sources.row(0, named=True)["doc_id"] == doc_id
    assert sources.row(0, named=True)["source_id"] == sha16(doc_id + "\n" + text)
    # the CRLF copy normalizes to the same text, so it is a duplicate of the first by uri
    assert sources["uri"].to_list() == ["crlf/x.txt"]
    assert skipped_reasons(skipped) == {"lf/x.txt": "duplicate of crlf/x.txt"}


def test_duplicates_keep_first_uri_and_are_reported(tmp_path: Path):
    write(tmp_path, "a/orig.md", GOOD)
    write(tmp_path, "b/copy.md", GOOD)
    write(tmp_path, "c/other.md", prose("other"))
    sources, skipped = ingest(tmp_path, CFG)
    assert sources["uri"].to_list() == ["a/orig.md", "c/other.md"]
    assert sources["source_id"].n_unique() == sources.height
    assert skipped_reasons(skipped) == {"b/copy.md": "duplicate of a/orig.md"}
    with pytest.raises(SourceError, match=r"^b/copy\.md: duplicate of a/orig\.md; rerun without"):
        ingest(tmp_path, CFG, strict=True)


def test_repeated_section_inside_one_document_is_reported_by_section(tmp_path: Path):
    para = "Repeated boilerplate paragraph. " + "w" * 300
    write(tmp_path, "x.md", f"{para}\n\nUnique middle part. {'m' * 100}\n\n{para}")
    sources, skipped = ingest(tmp_path, Ingest(max_section_chars=400))
    assert sources["section"].to_list() == [0, 1]
    assert skipped_reasons(skipped) == {"x.md": "section(s) 2 duplicate of x.md"}


def paragraphs(n: int, size: int) -> list[str]:
    return [f"P{i:02d} " + "x" * (size - 5) + "." for i in range(n)]


def test_split_packs_whole_paragraphs_up_to_the_limit():
    paras = paragraphs(10, 150)
    sections = split_sections("\n\n".join(paras), 400)
    assert all(len(s) <= 400 for s in sections)
    assert [len(s.split("\n\n")) for s in sections] == [2, 2, 2, 2, 2]  # 150+2+150 fits, a 3rd not
    assert [p for s in sections for p in s.split("\n\n")] == paras
    # the limit counts the blank line between paragraphs: 199 + 2 + 199 fits, 200 + 2 + 200 not
    assert len(split_sections("\n\n".join(paragraphs(2, 199)), 400)) == 1
    assert split_sections("\n\n".join(paragraphs(2, 200)), 400) == paragraphs(2, 200)


def test_split_falls_back_to_sentences_then_words_then_hard_cuts():
    sentences = [f"Sentence {i} " + "y" * 80 + "." for i in range(10)]
    long_para = " ".join(sentences)
    sections = split_sections(f"Short intro.\n\n{long_para}", 250)
    assert all(len(s) <= 250 for s in sections)
    assert sections[0].startswith("Short intro.\n\nSentence 0 ")  # intro stays whole
    for section in sections[1:]:  # the long paragraph is cut between sentences only
        assert section.startswith("Sentence") and section.endswith(".")
    assert " ".join(" ".join(sections).split()) == " ".join(f"Short intro. {long_para}".split())
    words = " ".join(["word"] * 100)  # no sentence end: cut at a word boundary
    assert all(s.split() == ["word"] * len(s.split()) for s in split_sections(words, 200))
    blob = "z" * 1000  # no space at all: hard cuts
    assert split_sections(blob, 300) == ["z" * 300] * 3 + ["z" * 100]


def test_ingest_sections_have_indices_and_respect_max_section_chars(tmp_path: Path):
    write(tmp_path, "long.md", "\n\n".join(paragraphs(12, 190)))
    write(tmp_path, "a.md", GOOD)
    sources, _ = ingest(tmp_path, Ingest(max_section_chars=400))
    long = sources.filter(pl.col("uri") == "long.md")
    assert long["section"].to_list() == list(range(6))
    assert long["n_chars"].max() <= 400  # type: ignore[operator]
    assert long["doc_id"].n_unique() == 1
    assert sources["uri"].to_list()[0] == "a.md"  # sorted by uri, then section


def test_domains_mapping_and_defaults(tmp_path: Path):
    write(tmp_path, "cs/deep/x.md", prose("x"))
    write(tmp_path, "law/y.md", prose("y"))
    write(tmp_path, "z.md", prose("z"))
    sources, _ = ingest(tmp_path, Ingest(domains={"cs": "computer science"}))
    assert dict(zip(sources["uri"], sources["domain"], strict=True)) == {
        "cs/deep/x.md": "computer science",
        "law/y.md": "law",
        "z.md": "general",
    }


# --- incremental refresh and files ---------------------------------------------------------


def test_new_or_changed_returns_only_unseen_sections(tmp_path: Path):
    write(tmp_path, "a.md", prose("a"))
    write(tmp_path, "b.md", prose("b"))
    previous, _ = ingest(tmp_path, CFG)
    write(tmp_path, "b.md", prose("b") + "Edited.")
    write(tmp_path, "c.md", prose("c"))
    current, _ = ingest(tmp_path, CFG)
    assert new_or_changed(current, previous)["uri"].to_list() == ["b.md", "c.md"]
    assert new_or_changed(current, current).is_empty()
    assert new_or_changed(current, schemas.empty(schemas.SOURCES)).equals(current)


def test_ingest_to_files_writes_both_tables(tmp_path: Path):
    write(tmp_path, "src/ok.md", GOOD)
    write(tmp_path, "src/bad.xyz", GOOD)
    paths = Paths(sources=tmp_path / "src", processed=tmp_path / "processed")
    assert ingest_to_files(paths, CFG) == (1, 1)
    sources = pl.read_parquet(paths.sources_table)
    skipped = pl.read_parquet(paths.processed / "skipped_sources.parquet")
    assert sources.schema == schemas.SOURCES
    assert skipped.schema == schemas.SKIPPED
    assert skipped["uri"].to_list() == ["bad.xyz"]
    with pytest.raises(SourceError, match=r"bad\.xyz"):
        ingest_to_files(paths, CFG, strict=True)


def test_shipped_sample_sources_cover_three_domains(tmp_path: Path):
    sources, skipped = ingest(REPO / "data" / "sources", CFG)
    assert skipped.is_empty(), skipped.to_dicts()
    assert sources.height >= 6
    assert set(sources["domain"]) >= {"legal", "cs_research", "math"}
    assert sources.group_by("domain").len()["len"].min() >= 2  # type: ignore[operator]
    assert sources["n_chars"].max() <= CFG.max_section_chars  # type: ignore[operator]
    shutil.copytree(REPO / "data" / "sources", tmp_path / "copy")
    copied, _ = ingest(tmp_path / "copy", CFG)
    assert copied["source_id"].to_list() == sources["source_id"].to_list()


# --- fidelity: encoding marks, reader crashes, console -------------------------------------

BOM = "\ufeff"
LINES = [f"Record {n}: {GOOD.strip()}" for n in (1, 2)]


def bom_file(fmt: str) -> bytes:
    """The same two-paragraph text (or two records) in ``fmt``, saved with a UTF-8 BOM."""
    if fmt == "jsonl":
        return (BOM + "\n".join(json.dumps({"text": line}) for line in LINES)).encode()
    if fmt == "parquet":
        return parquet_bytes(pl.DataFrame({"text": [BOM + line for line in LINES]}))
    if fmt == "html":
        return (
            BOM + "<html><body>" + "".join(f"<p>{x}</p>" for x in LINES) + "</body></html>"
        ).encode()
    return (BOM + "\n\n".join(LINES)).encode()


@pytest.mark.parametrize("fmt", ["txt", "md", "html", "jsonl", "parquet"])
def test_a_utf8_bom_is_dropped_alike_in_every_format(tmp_path: Path, fmt: str):
    write(tmp_path, f"doc.{fmt}", bom_file(fmt))
    sources, skipped = ingest(tmp_path, CFG)
    assert skipped.is_empty(), skipped.to_dicts()
    assert "\n\n".join(sources["text"]) == "\n\n".join(LINES)  # nothing lost, no mark left
    assert not any(BOM in t for t in sources["title"])


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_decoded(tmp_path: Path, codec: str):
    write(tmp_path, "win.txt", f"Überschrift\n\n{GOOD}".encode(codec))  # Python writes the mark
    sources, skipped = ingest(tmp_path, CFG)
    assert skipped.is_empty()
    assert sources["text"][0] == f"Überschrift\n\n{GOOD.strip()}"


def raise_in_pdf_reader(exc: BaseException) -> Callable[..., object]:
    def reader(*_: object, **__: object) -> object:
        raise exc

    return reader


@pytest.mark.parametrize(
    "exc",
    [RecursionError("maximum recursion depth exceeded"), MemoryError(), OSError(5, "I/O error")],
    ids=["recursion", "memory", "oserror"],
)
def test_any_exception_from_a_reader_is_one_skipped_row_and_the_rest_is_ingested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
):
    monkeypatch.setattr("tasks.ingest_readers.pypdf.PdfReader", raise_in_pdf_reader(exc))
    write(tmp_path, "annex.pdf", make_pdf(["Annex text that would be long enough to keep."]))
    write(tmp_path, "notes.md", GOOD)
    sources, skipped = ingest(tmp_path, CFG)
    assert sources["uri"].to_list() == ["notes.md"]
    (reason,) = skipped_reasons(skipped).values()
    assert reason.startswith(f".pdf reader failed ({type(exc).__name__}")
    assert "\n" not in reason and len(reason) < 500


def test_a_pdf_that_makes_pypdf_recurse_too_deep_is_skipped_by_name(tmp_path: Path):
    nested = "[" * 3000 + "]" * 3000  # pypdf reads nested arrays recursively
    write(
        tmp_path, "scan.pdf", make_pdf([], raw=f"BT /F1 12 Tf 72 720 Td (Annex) Tj {nested} TJ ET")
    )
    write(tmp_path, "ok.md", GOOD)
    sources, skipped = ingest(tmp_path, CFG)
    assert sources["uri"].to_list() == ["ok.md"]
    assert list(skipped_reasons(skipped)) == ["scan.pdf"]
    assert re.fullmatch(  # where the recursion hits the limit differs between runs
        r"\.pdf reader failed \(RecursionError: maximum recursion depth exceeded[^)]*\); "
        r"the file may be malformed: re-export or convert it",
        skipped_reasons(skipped)["scan.pdf"],
    )


def test_skipped_files_and_records_are_named_one_line_each(tmp_path: Path):
    write(tmp_path, "src/recs.jsonl", f"{json.dumps({'text': GOOD})}\n{{broken\n")
    write(tmp_path, "src/x.docx", b"zip")
    paths = Paths(sources=tmp_path / "src", processed=tmp_path / "processed")
    ingest_to_files(paths, CFG)
    assert skipped_lines(paths) == [
        f"skipped {tmp_path}/src/recs.jsonl#record=2: not valid JSON (Expecting property name "
        "enclosed in double quotes at column 2); fix the line",
        f"skipped {tmp_path}/src/x.docx: unsupported extension .docx (supported: "
        f"{', '.join(SUPPORTED)})",
    ]


def test_the_ingest_command_names_each_skipped_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    write(tmp_path, "data/sources/recs.jsonl", f"{BOM}{json.dumps({'text': GOOD})}\n[1]\n")
    write(tmp_path, "params.yaml", "ingest: {min_chars: 40}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["ingest"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "skipped data/sources/recs.jsonl#record=2: not a JSON object (got list); write one object per line"
        in lines
    )
    assert "ingest: 1 sources → data/processed/sources.parquet; 1 skipped (named above)" in lines


# --- fidelity: HTML ------------------------------------------------------------------------


def html_text(tmp_path: Path, markup: str) -> dict[str, Any]:
    write(tmp_path, "page.html", markup)
    sources, _ = ingest(tmp_path, CFG)
    assert sources.height == 1
    return sources.row(0, named=True)


@pytest.mark.parametrize("gap", ["", "\n   ", "\n\t\t"], ids=["glued", "newlines", "tabs"])
def test_html_table_cells_are_separated_and_each_row_is_a_line(tmp_path: Path, gap: str):
    rows = [["Zone", "Weight (kg)", "Fee (GBP)"], ["A", "2", "4.50"], ["B", "10", "12.75"]]
    cells = [gap.join(f"<td>{gap}{c}{gap}</td>" for c in row) for row in rows]
    table = (
        "<table><tbody>"
        + "".join(f"<tr>{gap}{c}{gap}</tr>{gap}" for c in cells)
        + "</tbody></table>"
    )
    row = html_text(
        tmp_path, f"<html><body><p>{GOOD}</p>{table}<p>After the table.</p></body></html>"
    )
    assert row["text"] == (
        f"{GOOD.strip()}\n\nZone | Weight (kg) | Fee (GBP)\nA | 2 | 4.50\nB | 10 | 12.75\n\nAfter the table."
    )


def test_html_keeps_main_content_and_drops_title_navigation_and_footer(tmp_path: Path):
    markup = f"""<html><title>Memo | Agency</title><body>
    <header><a href="/">Agency home</a></header>
    <nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li></ul></nav>
    <div class="site-menu"><a href="/a">Menu one</a></div><div id="breadcrumbs">Home &gt; Memos</div>
    <main><h1>Memorandum on energy use</h1>
    <p>Data centres used more power in 2023.<sup><a href="#fn1">1</a></sup> {GOOD} Three options:</p>
    <ol><li>Require reporting.</li><li><p>Set standards.</p><ul><li>new sites</li><li>old sites</li></ul></li></ol>
    <div class="footnotes"><ol><li id="fn1">Energy statistics, table 4. <a href="#r1">Back to citation</a></li></ol></div>
    </main><aside>Related: other memos</aside>
    <footer><p>Copyright 2024 Agency.</p><ul><li>Privacy</li></ul></footer></body></html>"""
    row = html_text(tmp_path, markup)
    assert row["title"] == "Memo | Agency"
    assert row["text"] == (
        "Memorandum on energy use\n\n"
        f"Data centres used more power in 2023.[1] {GOOD.strip()} Three options:\n\n"
        "1. Require reporting.\n2. Set standards.\n  - new sites\n  - old sites\n\n"
        "1. Energy statistics, table 4."
    )


def test_html_without_landmarks_keeps_its_heading_lists_and_footnotes(tmp_path: Path):
    # the shape on which trafilatura dropped the heading, the list and the footnote
    markup = f"""<html><head><title>T</title></head><body><div><h1>Options</h1>
    <p>{GOOD} The agency considered:</p><ol start="4"><li>reporting</li><li>standards</li></ol>
    <p>Reporting is cheap.<sup>2</sup></p><hr><p><small>2 Table 4.</small></p></div></body></html>"""
    row = html_text(tmp_path, markup)
    assert row["text"] == (
        f"Options\n\n{GOOD.strip()} The agency considered:\n\n4. reporting\n5. standards\n\n"
        "Reporting is cheap.2\n\n2 Table 4."
    )


def test_html_boilerplate_names_never_drop_most_of_the_page(tmp_path: Path):
    markup = f'<body><div class="layout-with-sidebar"><h1>Opinion</h1><p>{GOOD}</p></div></body>'
    assert html_text(tmp_path, markup)["text"] == f"Opinion\n\n{GOOD.strip()}"


def test_html_footnote_references_read_as_bracketed_marks(tmp_path: Path):
    markup = (
        f'<p>{GOOD} Power use rose 31%<a href="#fn33" class="fn">33</a> in 2023.<a href="#n2">*</a>'
        ' See <a href="#sec2">Section 2</a>, <a href="/page/4">4</a> and x<sup>2</sup>.</p>'
    )
    assert html_text(tmp_path, markup)["text"].endswith(
        "Power use rose 31%[33] in 2023.[*] See Section 2, 4 and x2."
    )


# --- fidelity: text repair, PDF pages, markdown --------------------------------------------


def test_text_repair_of_ligatures_soft_hyphens_hyphenation_and_invisible_marks(tmp_path: Path):
    raw = (
        "The e\ufb03cient di\ufb00erence in fac-\ntors is a con\u00ad\ntract term.\n"
        "A well-known rule, well-\nknown to every\u200b reader, and the seller\u2019s \u201cnotice\u201d is clear.\n"
        "Caf\u00c3\u00a9 prices rose, see the annex-\nSchedule B."
    )
    write(tmp_path, "a.txt", raw)
    sources, _ = ingest(tmp_path, CFG)
    assert sources["text"][0] == (
        "The efficient difference in factors is a contract term.\n"
        "A well-known rule, well-known to every reader, and the seller\u2019s \u201cnotice\u201d is clear.\n"
        "Café prices rose, see the annex-\nSchedule B."
    )


def pdf_pages(head: str) -> list[list[str]]:
    return [
        [
            head,
            "The statute requires notice within ten days. The buyer sent",
            "notice on day twelve, so the question is whether the fac-",
            "1",
        ],
        [
            head,
            "tors in section 4 excuse the delay. They do not.",
            "We affirm the judgment below.",
            "- 2 -",
        ],
        [head, "Second, the seller waived the defect by accepting payment.", "Page 3 of 4"],
        [head, "Third, costs go to the respondent.", "iv"],
    ]


def test_pdf_pages_lose_page_numbers_and_running_heads_and_sentences_run_on(tmp_path: Path):
    write(tmp_path, "opinion.pdf", make_pdf([], pages=pdf_pages("Cite as: 598 U. S. 1 (2023)")))
    sources, skipped = ingest(tmp_path, CFG)
    assert skipped.is_empty()
    assert sources["text"][0] == (
        "The statute requires notice within ten days. The buyer sent\n"
        "notice on day twelve, so the question is whether the factors in section 4 excuse the "
        "delay. They do not.\nWe affirm the judgment below.\n\n"
        "Second, the seller waived the defect by accepting payment.\n\n"
        "Third, costs go to the respondent."
    )


def test_form_feeds_in_layout_text_are_page_breaks(tmp_path: Path):
    pages = ["\n".join(p) for p in pdf_pages("SLIP OPINION  Page header")]
    write(tmp_path, "slip.txt", "\f".join(pages) + "\f")
    text = ingest(tmp_path, CFG)[0]["text"][0]
    assert "\f" not in text and "SLIP OPINION" not in text and "Page 3" not in text
    assert "whether the factors in section 4" in text


def test_markdown_front_matter_is_not_body_and_gives_the_title(tmp_path: Path):
    write(
        tmp_path, "a.md", f"---\ntitle: Leader leases\nauthors: [A, B]\n---\n\n# Heading\n\n{GOOD}"
    )
    write(tmp_path, "b.md", f"---\nlayout: post\n---\n# First Heading\n\n{prose('b')}")
    write(tmp_path, "c.md", f"Setext Title\n============\n\n{prose('c')}")
    write(tmp_path, "d.md", f"---\n\n{prose('d')}")  # a thematic break, not front matter
    sources, _ = ingest(tmp_path, CFG)
    rows = {r["uri"]: r for r in sources.iter_rows(named=True)}
    assert rows["a.md"]["title"] == "Leader leases"
    assert rows["a.md"]["text"] == f"# Heading\n\n{GOOD.strip()}"
    assert rows["b.md"]["title"] == "First Heading"
    assert rows["b.md"]["text"].startswith("# First Heading")
    assert rows["c.md"]["title"] == "Setext Title"
    assert rows["d.md"]["title"] != "---"


# --- fidelity: sections --------------------------------------------------------------------

CJK_SENTENCE = (
    "供货方未能在约定交货时间后四十八小时内交付的，买方可以书面通知解除本合同（第{}句）。"
)


def test_cjk_sections_end_at_sentence_ends_and_none_is_heading_only(tmp_path: Path):
    body = "".join(CJK_SENTENCE.format(i) for i in range(1, 101))  # one ~4,000-char paragraph
    write(tmp_path, "条款.md", f"# 迟延交货与通知要求\n\n{body}\n")
    sources, _ = ingest(tmp_path, CFG)
    texts = sources["text"].to_list()
    assert len(texts) == 2
    assert texts[0].startswith("# 迟延交货与通知要求\n\n供货方")  # the heading stays with its text
    assert all(t.endswith("。") and CFG.min_chars <= len(t) <= CFG.max_section_chars for t in texts)
    assert "".join(texts) == f"# 迟延交货与通知要求\n\n{body}"


def test_sentence_ends_skip_abbreviations_initials_and_list_numbers():
    text = "See Smith v. Jones, 5 U.S. 1. It held so, e.g. here. Dr. J. Roe agreed!\n2. Next item? 是。好"
    ends = [text[:i].rstrip().rsplit(" ", 1)[-1] for i in sentence_ends(text)]
    assert ends == ["1.", "here.", "agreed!", "item?", "是。"]


def test_sections_never_end_mid_word_or_on_a_heading_or_list_intro():
    words = [f"word{i}" for i in range(400)]
    intro = "Intro paragraph. " * 10
    text = f"{intro.strip()}\n\nII. DISCUSSION\n\nThe options are:\n\n" + "\n".join(
        f"{i}. Option {i} " + " ".join(words[i * 10 : i * 10 + 10]) for i in range(1, 30)
    )
    sections = split_sections(text, 400, 40)
    assert all(40 <= len(s) <= 400 for s in sections)
    assert sections[1].startswith("II. DISCUSSION\n\nThe options are:\n\n1. Option 1 ")
    for s in sections:
        assert s is sections[-1] or not is_lead(s.split("\n\n")[-1]), s
        assert re.match(r"^(\d+\. Option|II\.|Intro)", s), s  # starts at an item or paragraph
    assert "\n".join(sections).split() == text.split()


def test_a_short_tail_is_merged_or_the_boundary_moves(tmp_path: Path):
    para = "A sentence of moderate length that ends here. " * 8  # 376 chars
    sections = split_sections(f"{para.strip()}\n\nTiny tail.", 400, 40)
    assert sections == [f"{para.strip()}\n\nTiny tail."]
    sections = split_sections(f"{para.strip()} {para.strip()} Tail end.", 400, 40)
    assert all(40 <= len(s) <= 400 for s in sections)
    assert sections[-1].endswith("Tail end.") and all(s.endswith(".") for s in sections)


# --- per-source metadata, LaTeX, DVC deps --------------------------------------------------


def test_other_jsonl_fields_are_kept_as_metadata(tmp_path: Path):
    answer = "Natalia sold 48/2 = 24 clips in May.\nSo 48 + 24 = 72 clips in total.\n#### 72"
    record = {"question": "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many clips did she sell?", "answer": answer}  # fmt: skip
    write(tmp_path, "gsm8k.jsonl", json.dumps(record) + "\n")
    sources, _ = ingest(tmp_path, Ingest(text_column="question"))
    assert json.loads(sources["metadata"][0]) == {"answer": answer}


def test_other_parquet_columns_are_kept_as_metadata_json(tmp_path: Path):
    frame = pl.DataFrame(
        {
            "text": [GOOD + "1", GOOD + "2"],
            "title": ["T1", "T2"],
            "score": [0.5, float("nan")],
            "day": [datetime(2026, 1, 2).date(), None],
            "tags": [["a", "b"], []],
        }
    )
    write(tmp_path, "recs.parquet", parquet_bytes(frame))
    sources, _ = ingest(tmp_path, CFG)
    assert [json.loads(m) for m in sources["metadata"]] == [
        {"day": "2026-01-02", "score": 0.5, "tags": ["a", "b"]},
        {"day": None, "score": None, "tags": []},
    ]


def test_markdown_front_matter_fields_are_metadata_and_plain_files_have_none(tmp_path: Path):
    write(tmp_path, "a.md", f"---\ntitle: T\nauthors: [A, B]\ndate: 2024-05-01\n---\n{GOOD}")
    write(tmp_path, "b.txt", prose("b"))
    sources, _ = ingest(tmp_path, CFG)
    meta = dict(zip(sources["uri"], sources["metadata"], strict=True))
    assert json.loads(meta["a.md"]) == {"authors": ["A", "B"], "date": "2024-05-01"}
    assert meta["b.txt"] == "{}"


TEX = r"""\documentclass{article}
\usepackage{amsmath}
\title{Leader Leases in Practice}
\begin{document}
\maketitle
\section{Introduction}\label{sec:intro}
Leases let a leader serve reads locally~\cite{gray89}. The bound is $t < T - \epsilon$ % drift
for clock drift, see Section~\ref{sec:intro}; fac\-tors differ by 31\%.
\begin{enumerate}
\item Reads are local.
\item Writes go through \textbf{consensus}.
\end{enumerate}
\begin{tabular}{lr}
\hline
Zone & Fee \\
A & 4.50 \\
\end{tabular}
\end{document}
"""


def test_latex_body_is_read_with_title_headings_lists_tables_and_math(tmp_path: Path):
    write(tmp_path, "paper.tex", TEX)
    sources, skipped = ingest(tmp_path, CFG)
    assert skipped.is_empty()
    row = sources.row(0, named=True)
    assert row["title"] == "Leader Leases in Practice"
    assert row["text"] == (
        "Introduction\n\n"
        "Leases let a leader serve reads locally\u00a0[gray89]. The bound is $t < T - \\epsilon$\n"
        "for clock drift, see Section\u00a0sec:intro; factors differ by 31%.\n\n"
        "1. Reads are local.\n2. Writes go through consensus.\n\n"
        "Zone | Fee\nA | 4.50"
    )


def test_dvc_ingest_stage_depends_on_every_ingest_module():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["ingest"]
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "tasks").glob("ingest*.py")}
    assert modules <= set(stage["deps"])


def test_a_mixed_folder_ingests_every_good_file_and_names_each_broken_one(tmp_path: Path):
    good = {
        "a.txt": prose("a").encode(),
        "b.md": f"---\ntitle: B\n---\n{prose('b')}".encode(),
        "c.html": f"<title>C</title><p>{prose('c')}</p>".encode(),
        "d.pdf": make_pdf([prose("d").strip()]),
        "e.jsonl": json.dumps({"text": prose("e")}).encode(),
        "f.parquet": parquet_bytes(pl.DataFrame({"text": [prose("f")]})),
        "g.tex": f"\\section{{G}}\n{prose('g')}".encode(),
    }
    broken = {
        "x.txt": b"\xc3\x28" + GOOD.encode(),
        "x.md": b"\x00\x01" + GOOD.encode(),
        "x.html": "<p>caf\xe9</p>".encode("latin-1"),
        "x.pdf": b"%PDF-1.7 not really",
        "x.jsonl": b"{broken",
        "x.parquet": b"PAR1 junk",
        "x.tex": b"\xff" + GOOD.encode(),
    }
    for name, data in {**good, **broken}.items():
        write(tmp_path, name, data)
    sources, skipped = ingest(tmp_path, CFG)
    assert sources["uri"].to_list() == [
        "a.txt", "b.md", "c.html", "d.pdf", "e.jsonl#record=1", "f.parquet#record=1", "g.tex"
    ]  # fmt: skip
    named = {*(set(broken) - {"x.jsonl"}), "x.jsonl#record=1"}  # a bad line is a bad record
    assert set(skipped["uri"]) == named and all(skipped["reason"])
