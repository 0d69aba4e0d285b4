"""Hostile files in the sources folder (issue 12, item 5): a source is trusted only inside its
folder, a file name of any bytes is read and printed escaped, and a file whose reading runs away
becomes a skipped row within ``ingest.max_parse_s`` without leaving a thread behind."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

import tasks.ingest_readers as readers
from autodata.settings import Ingest, Paths
from tasks.ingest import ingest, ingest_to_files, skipped_lines
from tasks.ingest_deadline import Watchdog

GOOD = "A sentence that is long enough to pass the minimum length check easily. " * 2
SECRET = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY and more words here. "


def prose(tag: str) -> str:
    """A section's worth of text sharing no word 5-gram with another tag's (no near-duplicates)."""
    return f"Notes on {tag}: the {tag} file says what {tag} is for and why {tag} matters. "


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def reasons(skipped: pl.DataFrame) -> dict[str, str]:
    return dict(skipped.select("uri", "reason").rows())


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(sources, outside): a sources folder with one good file, and a folder beside it holding a
    credentials file."""
    sources, outside = tmp_path / "sources", tmp_path / "home"
    write(sources / "notes.txt", GOOD)
    write(outside / ".aws" / "credentials", SECRET * 2)
    return sources, outside


# --- links -----------------------------------------------------------------------------------


def test_a_link_to_a_file_outside_the_folder_is_a_skipped_row_never_read(folders):
    sources, outside = folders
    (sources / "creds.txt").symlink_to(outside / ".aws" / "credentials")
    (sources / "relative.md").symlink_to(Path("..") / "home" / ".aws" / "credentials")
    rows, skipped = ingest(sources, Ingest())
    assert rows["uri"].to_list() == ["notes.txt"]
    assert not rows.filter(pl.col("text").str.contains("aws_secret")).height
    target = os.path.realpath(outside / ".aws" / "credentials")
    for uri in ("creds.txt", "relative.md"):
        assert reasons(skipped)[uri] == (
            f"a link to a file outside the sources folder ({target}): not read, a source is "
            "trusted only inside its folder; copy it in, or set ingest.follow_links_outside: true"
        )


def test_a_link_to_the_root_or_a_folder_outside_is_not_walked(folders, monkeypatch):
    sources, outside = folders
    (sources / "everything").symlink_to("/")
    (sources / "sub").mkdir()
    (sources / "sub" / "home").symlink_to(outside)
    walked: list[str] = []
    real_walk = os.walk

    def spy(top, *args, **kwargs):
        for entry in real_walk(top, *args, **kwargs):
            walked.append(entry[0])
            yield entry

    monkeypatch.setattr(os, "walk", spy)
    rows, skipped = ingest(sources, Ingest())
    assert rows["uri"].to_list() == ["notes.txt"]
    assert sorted(reasons(skipped)) == ["everything", "sub/home"]
    assert reasons(skipped)["everything"].startswith(
        "a link to a directory outside the sources folder (/)"
    )
    assert walked == [str(sources), str(sources / "sub")]  # nothing outside was listed


def test_links_out_are_read_when_the_setting_allows_them_and_still_never_loop(folders):
    sources, outside = folders
    (sources / "creds.txt").symlink_to(outside / ".aws" / "credentials")
    (sources / "up").symlink_to(sources.parent)  # outside, and holding the sources folder itself
    rows, skipped = ingest(sources, Ingest(follow_links_outside=True))
    assert "creds.txt" in rows["uri"].to_list()
    assert "up/home/.aws/credentials" not in rows["uri"].to_list()  # hidden stays hidden
    assert not [u for u in rows["uri"].to_list() if u.startswith("up/sources/")]  # walked once
    assert "creds.txt" not in reasons(skipped)


def test_links_inside_the_folder_are_still_followed(tmp_path: Path):
    sources = tmp_path / "sources"
    write(sources / "real" / "a.md", GOOD)
    (sources / "alias").symlink_to(sources / "real")
    (sources / "b.md").symlink_to(sources / "real" / "a.md")
    rows, skipped = ingest(sources, Ingest())
    assert rows["uri"].to_list() == ["alias/a.md"]  # the first path to the directory, read once
    assert reasons(skipped) == {"b.md": "duplicate of alias/a.md"}


def test_a_fifo_is_skipped_not_waited_on(tmp_path: Path):
    write(tmp_path / "good.txt", GOOD)
    os.mkfifo(tmp_path / "pipe.txt")
    _, skipped = ingest(tmp_path, Ingest())
    assert reasons(skipped) == {
        "pipe.txt": "not a regular file (a pipe, socket or device); remove it"
    }


# --- file names of any bytes ---------------------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_read_with_its_bytes_escaped(tmp_path: Path):
    sources = tmp_path / "sources"
    write(sources / os.fsdecode(b"caf\xe9 menu.txt"), prose("coffee") * 2)  # title: the name
    write(sources / os.fsdecode(b"bad\xff.docx"), b"x")
    write(sources / "plain.txt", prose("tea") * 2)
    paths = Paths(sources=sources, processed=tmp_path / "processed")
    assert ingest_to_files(paths, Ingest()) == (2, 1)
    table = pl.read_parquet(paths.sources_table)
    assert table.select("uri", "title").rows() == [
        ("caf\\xe9 menu.txt", "caf\\xe9 menu"),
        ("plain.txt", "plain"),
    ]
    again, _ = ingest(sources, Ingest())
    assert again["source_id"].to_list() == table["source_id"].to_list()  # stable ids
    assert skipped_lines(paths) == [
        f"skipped {sources}/bad\\xff.docx: unsupported extension .docx (supported: .htm, .html, "
        ".jsonl, .md, .parquet, .pdf, .tex, .txt)"
    ]


def test_a_file_name_with_a_newline_or_an_escape_code_cannot_forge_a_line(tmp_path: Path):
    sources = tmp_path / "sources"
    write(sources / "ok.txt", GOOD)
    write(sources / "a\nskipped /etc/passwd: forged.docx", b"x")
    write(sources / "b\x1b]8;;https:x.test\x1b\\link\x1b[31m.docx", b"x")
    paths = Paths(sources=sources, processed=tmp_path / "processed")
    ingest_to_files(paths, Ingest())
    assert pl.read_parquet(paths.skipped_sources_table)["uri"].to_list() == [
        "a\nskipped /etc/passwd: forged.docx",  # stored as it is
        "b\x1b]8;;https:x.test\x1b\\link\x1b[31m.docx",
    ]
    lines = skipped_lines(paths)
    assert len(lines) == 2 and not any("\n" in ln or "\x1b" in ln for ln in lines)
    assert lines[0].startswith(f"skipped {sources}/a\\nskipped /etc/passwd: forged.docx: ")
    assert lines[1].startswith(f"skipped {sources}/b\\x1b]8;;https:x.test\\x1b\\link\\x1b[31m.docx")


# --- a time limit per file -------------------------------------------------------------------------


def test_a_file_whose_reading_runs_away_is_a_skipped_row_and_no_thread_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def endless(data: bytes, doc: readers.Doc, cfg: Ingest) -> list[readers.Doc]:
        while True:  # a parser gone round in circles
            pass

    write(tmp_path / "good.txt", GOOD)
    write(tmp_path / "stuck.tex", GOOD)
    monkeypatch.setitem(readers._READERS, ".tex", endless)
    threads = threading.active_count()
    start = time.monotonic()
    rows, skipped = ingest(tmp_path, Ingest(max_parse_s=0.5))
    assert time.monotonic() - start < 30  # the limit is 0.5 s; generous for a loaded machine
    assert rows["uri"].to_list() == ["good.txt"]
    assert reasons(skipped) == {
        "stuck.tex": "reading took longer than ingest.max_parse_s=0.5 s (a pathological or very "
        "large file?); split or convert it, or raise ingest.max_parse_s"
    }
    assert threading.active_count() == threads


def test_a_library_that_swallows_the_interruption_is_interrupted_again():
    def stubborn() -> str:
        while True:
            try:
                while True:
                    pass
            except Exception:  # TimeUp is no Exception: this does not catch it
                continue

    with Watchdog(0.2) as watchdog:
        assert watchdog.run(stubborn) is None
        assert watchdog.run(lambda: "next file") == "next file"  # nothing pending for it
        time.sleep(1.5)  # and nothing arrives later, outside any reading


@pytest.mark.timeout(60, method="thread")
def test_after_an_ingest_a_traced_call_still_runs(tmp_path: Path):
    """A debugger or coverage after an ingest: no interruption is left half-delivered (clearing
    one through CPython leaves its eval breaker set, and a traced call then spins for ever)."""
    write(tmp_path / "good.txt", GOOD)
    ingest(tmp_path, Ingest())
    with Watchdog(0.1) as watchdog:
        watchdog.run(lambda: time.sleep(0.3))  # it fires while the reading is in C

    def traced() -> int:
        return 1

    events: list[str] = []

    def trace(frame: object, event: str, arg: object) -> object:
        events.append(event)
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)  # type: ignore[arg-type]
    try:
        traced()
    finally:
        sys.settrace(previous)
    assert events[:2] == ["call", "line"]


@pytest.mark.timeout(60)
def test_a_yaml_alias_bomb_in_front_matter_is_skipped_not_expanded(tmp_path: Path):
    levels = [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    front = "\n".join(["---", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]", *levels, "---"])
    write(tmp_path / "boom.md", f"{front}\n{GOOD}")  # 10^9 values once expanded
    write(tmp_path / "good.txt", prose("fine"))
    _, skipped = ingest(tmp_path, Ingest())
    assert reasons(skipped)["boom.md"].startswith(
        "front matter of more than 100,000 values once its YAML aliases are expanded"
    )
