"""Text from a file, a file name, a server or a model reaches the terminal with its control
characters escaped and its rich markup shown as written (issue 12, item 5): `autodata lineage`,
the error and status lines, the run's progress lines and summary, `autodata models check`."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from autodata import schemas, summary
from autodata.cli import app
from autodata.errors import SourceError
from autodata.io import write_parquet
from autodata.llm import backends
from autodata.progress import Reporter
from autodata.settings import Paths
from autodata.terminal import printable

runner = CliRunner()
LINK = "\x1b]8;;https://evil.test/\x1b\\click here\x1b]8;;\x1b\\"  # an OSC 8 hyperlink
HOSTILE = f"Rent {LINK} [link=https://evil.test/]pay[/link] \x1b[2J\x07\rover\u202eeman"
RAW = ("\x1b", "\x07", "\r", "\u202e")  # what must never reach the terminal as it is


def shown(text: str) -> None:
    assert not [c for c in RAW if c in text], repr(text)


# --- the helper ------------------------------------------------------------------------------


def test_printable_escapes_every_control_character_and_keeps_the_text():
    assert printable(HOSTILE) == (
        "Rent \\x1b]8;;https://evil.test/\\x1b\\click here\\x1b]8;;\\x1b\\ "
        "[link=https://evil.test/]pay[/link] \\x1b[2J\\x07\\rover\\u202eeman"
    )
    assert printable("a\nb\tc") == "a\\nb\tc"  # one line: a newline cannot forge another
    assert printable("a\nb\x1b", lines=True) == "a\nb\\x1b"  # an excerpt keeps its lines
    assert printable("caf\udce9.txt") == "caf\\xe9.txt"  # a file name's byte that is not UTF-8
    assert printable("\x85\x9b\u2028") == "\\x85\\x9b\\u2028"  # C1 controls, line separator
    assert printable("plain text, «quotes», 数学") == "plain text, «quotes», 数学"


# --- lineage ---------------------------------------------------------------------------------


@pytest.fixture
def hostile_project(tmp_path: Path) -> Path:
    """A project whose source (title, uri, text) and round (question, reason) are hostile."""
    paths = {k: str(tmp_path / str(v)) for k, v in Paths().model_dump().items()}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": paths}))
    text = f"First line of the source.\n{HOSTILE}\nLast line."
    source = {"source_id": "src-1", "doc_id": "doc-1", "section": 0, "domain": "legal",
              "title": f"Title {LINK}", "uri": "legal/a\x1b[31m\nforged.md", "text": text,
              "n_chars": len(text), "ingested_at": datetime(2026, 1, 1, tzinfo=UTC)}  # fmt: skip
    round_ = {"candidate_id": "cand-1", "source_id": "src-1", "round": 1,
              "question": f"Is it due? {HOSTILE}", "weak_mean": 0.2, "weak_max": 0.2,
              "weak_min": 0.2, "strong_mean": 0.8, "strong_min": 0.8, "gap": 0.6,
              "control_gap": 1.0, "decision": "too_easy", "reason": f"judge said: {LINK}",
              "feedback": "", "recipe_hash": "abc", "gate": "{}"}  # fmt: skip
    processed = tmp_path / "data" / "processed"
    write_parquet(pl.DataFrame([source], schema=schemas.SOURCES), processed / "sources.parquet")
    write_parquet(pl.DataFrame([round_], schema=schemas.ROUNDS), processed / "rounds.parquet")
    write_parquet(schemas.empty(schemas.ACCEPTED), processed / "accepted.parquet")
    return params


def test_lineage_shows_a_hostile_source_and_question_escaped(hostile_project: Path):
    result = runner.invoke(app, ["--params", str(hostile_project), "lineage", "cand-1"])
    assert result.exit_code == 0, result.output
    out = result.output
    shown(out)
    assert "[link=https://evil.test/]pay[/link]" in out  # markup shown, not made a link
    assert "\\x1b]8;;https://evil.test/\\x1b\\click here" in out
    assert "legal/a\\x1b[31m\\nforged.md" in out  # the uri: one line
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line == "First line of the source.")
    assert lines[first + 2] == "Last line."  # the excerpt keeps its own lines


# --- status and error lines, progress, summary, models check ---------------------------------


def test_an_error_quoting_a_file_is_one_escaped_line(monkeypatch, tmp_path: Path):
    import tasks.ingest

    def fails(*args: object, **kwargs: object) -> tuple[int, int]:
        raise SourceError(f"legal/x\n{LINK}.md: not UTF-8; rerun without --strict to skip it")

    monkeypatch.setattr(tasks.ingest, "ingest_to_files", fails)
    paths = {k: str(tmp_path / str(v)) for k, v in Paths().model_dump().items()}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"paths": paths}))
    result = runner.invoke(app, ["--params", str(tmp_path / "params.yaml"), "ingest"])
    assert result.exit_code == 2
    shown(result.output)
    assert result.output.strip().splitlines() == [
        "error: legal/x\\n\\x1b]8;;https://evil.test/\\x1b\\click here\\x1b]8;;\\x1b\\.md: not "
        "UTF-8; rerun without --strict to skip it"
    ]


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=300), buffer


def test_progress_lines_and_warnings_escape_what_they_quote():
    term, buffer = console()
    reporter = Reporter(term)
    reporter.warn(f"skipped data/sources/{HOSTILE}.md: unsupported extension")
    reporter.line(f"[bold]round 1[/] done — announced: {LINK}")
    out = buffer.getvalue()
    assert "[link=https://evil.test/]pay[/link]" in out and "[bold]" not in out  # ours is markup
    assert "\\x1b]8;;https://evil.test/" in out and "\x1b]8;;" not in out  # theirs is not
    assert "\x07" not in out and "\r" not in out and "\u202e" not in out


def test_the_summary_escapes_a_cause_a_server_named():
    term, buffer = console()
    per_role = {"judge": {"causes": {f"http_503 {LINK}": 4}}}
    summary.render_causes(per_role, term)
    out = buffer.getvalue()
    assert "\x1b]8;;" not in out and "\\x1b]8;;https://evil.test/" in out


def test_models_check_escapes_a_servers_reply(monkeypatch, tmp_path: Path):
    async def checks(settings: Any, announce: Any = None) -> list[backends.RoleCheck]:
        return [
            backends.RoleCheck("judge", "openai", f"m{LINK}", 0.1, True, f"JSON ok: {HOSTILE}"),
            backends.RoleCheck("weak", "openai", "m", None, False, f"HTTP 500: {LINK}"),
        ]

    monkeypatch.setattr(backends, "check_models", checks)
    monkeypatch.setenv("COLUMNS", "400")
    (tmp_path / "params.yaml").write_text("{}\n")
    result = runner.invoke(app, ["--params", str(tmp_path / "params.yaml"), "models", "check"])
    assert result.exit_code == 3
    shown(result.output)
    assert "[link=https://evil.test/]pay[/link]" in result.output
    assert "\\x1b]8;;https://evil.test/" in result.output
