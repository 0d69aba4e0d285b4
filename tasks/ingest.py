"""Ingest stage: a directory of documents -> the ``sources`` table (+ a ``skipped`` table).

Pure core: :func:`ingest` reads ``source_dir`` recursively and returns two polars frames,
``schemas.SOURCES`` and ``schemas.SKIPPED``. Every file or record that is not used becomes a
skipped row with a reason that says how to fix it — including any exception a reader's library
raises; nothing is dropped silently except hidden files and hidden directories (names starting
with ``.``, e.g. ``.gitkeep``, ``.DS_Store``, ``.git/``), which are never sources.

Formats: ``.txt`` (first line = title), ``.tex`` (body only, ``\\title`` as the title, see
:mod:`tasks.ingest_tex`), ``.md`` (YAML front matter gives the title and is not
body; else the first heading), ``.html``/``.htm`` (main content only, ``<title>`` as the title,
see :mod:`tasks.ingest_html`), ``.pdf`` (text layer via pypdf, page furniture dropped),
``.jsonl``/``.parquet`` (one source per record, text in the ``ingest.text_column`` column,
optional ``title``/``domain`` columns). Text is UTF-8 (a byte-order mark is dropped in every
format) and repaired alike (:mod:`tasks.ingest_text`); sections are cut at paragraph or
sentence boundaries and none is below ``ingest.min_chars`` (:mod:`tasks.ingest_sections`).

Ids are content hashes, so re-ingesting the same files gives the same ids whatever their mtime
or listing order: ``doc_id`` = sha256(repaired full text)[:16], ``source_id`` =
sha256(doc_id + section text)[:16]. ``uri`` is the posix path relative to ``source_dir``, plus
``#record=N`` (1-based) for jsonl/parquet records; in jsonl, record N is line N; a file name's
bytes that are not UTF-8 read ``\\xNN``. Per-format reading lives in :mod:`tasks.ingest_readers`.

Hostile files (:mod:`tasks.ingest_files`, :mod:`tasks.ingest_deadline`): a link that resolves
outside ``source_dir`` is a skipped row unless ``ingest.follow_links_outside``; a file larger than
``ingest.max_file_mb`` or whose reading takes longer than ``ingest.max_parse_s`` is a skipped
row; every reader's time grows linearly with the file's size.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from autodata import schemas
from autodata._killpoints import killpoint
from autodata.errors import SourceError
from autodata.io import write_parquet
from autodata.settings import Ingest, Paths, Settings
from autodata.terminal import printable
from tasks.ingest_deadline import Watchdog
from tasks.ingest_dedup import drop_near_duplicates
from tasks.ingest_files import list_sources
from tasks.ingest_readers import SUPPORTED, Doc, Skip, normalize, read_file
from tasks.ingest_sections import split_sections

__all__ = [
    "SUPPORTED",
    "Doc",
    "Skip",
    "ingest",
    "ingest_task",
    "ingest_to_files",
    "list_files",
    "new_or_changed",
    "normalize",
    "read_file",
    "short_hash",
    "skipped_lines",
    "split_sections",
]

FIX_HINT = "put .txt/.md/.tex/.pdf/.html/.jsonl/.parquet files in {dir} or set paths.sources"


# --- public API ---------------------------------------------------------------------------


def ingest(
    source_dir: Path, cfg: Ingest, *, now: datetime | None = None, strict: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read every document under ``source_dir``; return ``(sources, skipped)`` frames.

    ``sources`` has ``schemas.SOURCES`` (one row per section, sorted by file, record, section;
    identical sections kept once, near-duplicates of another file's section too, see
    :mod:`tasks.ingest_dedup`); ``skipped`` has ``schemas.SKIPPED``. With ``strict`` the
    first skipped file raises :class:`SourceError`. Raises :class:`SourceError` as well when
    ``source_dir`` is missing or yields no usable section.
    """
    if not source_dir.is_dir():
        what = "is not a directory" if source_dir.exists() else "not found"
        raise SourceError(
            f"source directory {source_dir} {what}; {FIX_HINT.format(dir=source_dir)}"
        )
    files, unread = list_sources(source_dir, cfg.follow_links_outside)
    docs: list[Doc] = []
    skips = [Skip(uri, reason) for uri, reason in unread]
    for skip in skips:
        _fail_if_strict(skip, strict)
    with Watchdog(cfg.max_parse_s) as watchdog:
        for path in files:
            for item in read_file(path, source_dir, cfg, watchdog):
                if isinstance(item, Skip):
                    _fail_if_strict(item, strict)
                    skips.append(item)
                else:
                    docs.append(item)
    sources, duplicates = _dedupe(_section_rows(docs, cfg))
    sources, near = drop_near_duplicates(sources)
    duplicates.extend(near)
    for dup in duplicates:
        _fail_if_strict(dup, strict)
    skips.extend(duplicates)
    if not sources:
        raise SourceError(_nothing_usable(source_dir, len(files) + len(unread), skips))
    return _sources_frame(sources, _utc(now)), _skipped_frame(skips)


def new_or_changed(current: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``current`` whose ``source_id`` is not in ``previous`` (incremental refresh)."""
    seen = previous.get_column("source_id").cast(pl.String)
    return current.filter(~pl.col("source_id").is_in(seen.to_list()))


def ingest_to_files(settings_paths: Paths, cfg: Ingest, strict: bool = False) -> tuple[int, int]:
    """Run :func:`ingest` on ``paths.sources``; write the sources and skipped tables atomically.

    Returns ``(n_sources, n_skipped)``.
    """
    sources, skipped = ingest(settings_paths.sources, cfg, strict=strict)
    sources = schemas.check(sources, schemas.SOURCES, "sources")
    skipped = schemas.check(skipped, schemas.SKIPPED, "skipped_sources")
    killpoint("ingest:before-write")
    write_parquet(sources, settings_paths.sources_table)
    write_parquet(skipped, settings_paths.skipped_sources_table)
    return sources.height, skipped.height


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(settings: Settings, strict: bool) -> tuple[int, int]:
    """Prefect wrapper of :func:`ingest_to_files`: (sources, skipped files)."""
    return ingest_to_files(settings.paths, settings.ingest, strict=strict)


def skipped_lines(paths: Paths) -> list[str]:
    """One console line per skipped file or record in the written skipped table:
    ``skipped <sources>/<uri>: <reason>``, its control characters escaped (a file name with a
    newline or an escape code cannot forge or colour a line)."""
    table = pl.read_parquet(paths.skipped_sources_table)
    return [
        printable(f"skipped {paths.sources / uri}: {why}")
        for uri, why in table.select("uri", "reason").rows()
    ]


def list_files(source_dir: Path) -> list[Path]:
    """Every non-hidden entry below ``source_dir`` that is not a directory and not a link out of
    it, sorted (:func:`tasks.ingest_files.list_sources`)."""
    return list_sources(source_dir, follow_links_outside=False)[0]


def short_hash(text: str) -> str:
    """First 16 hex chars of the sha256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- sections, dedupe, frames -------------------------------------------------------------


def _section_rows(docs: list[Doc], cfg: Ingest) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for doc in sorted(docs, key=lambda d: (d.file, d.record)):
        doc_id = short_hash(doc.text)
        for i, section in enumerate(split_sections(doc.text, cfg.max_section_chars, cfg.min_chars)):
            rows.append(
                {
                    "source_id": short_hash(doc_id + "\n" + section),
                    "doc_id": doc_id,
                    "section": i,
                    "domain": doc.domain,
                    "title": doc.title,
                    "uri": doc.uri,
                    "text": section,
                    "n_chars": len(section),
                    "metadata": doc.metadata,
                }
            )
    return rows


def _dedupe(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Skip]]:
    """Keep the first row per source_id; one skip per (dropped uri, kept uri)."""
    first: dict[str, dict[str, Any]] = {}
    dropped: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        kept = first.setdefault(row["source_id"], row)
        if kept is not row:
            dropped.setdefault((row["uri"], kept["uri"]), []).append(row["section"])
    n_sections: dict[str, int] = {}
    for row in rows:
        n_sections[row["uri"]] = n_sections.get(row["uri"], 0) + 1
    skips = [
        Skip(uri, f"duplicate of {orig}")
        if len(secs) == n_sections[uri]
        else Skip(uri, f"section(s) {', '.join(map(str, secs))} duplicate of {orig}")
        for (uri, orig), secs in dropped.items()
    ]
    return list(first.values()), skips


def _sources_frame(rows: list[dict[str, Any]], now: datetime) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows, schema={k: v for k, v in schemas.SOURCES.items() if k != "ingested_at"}
    )
    frame = frame.with_columns(
        pl.lit(now, dtype=schemas.SOURCES["ingested_at"]).alias("ingested_at")
    )
    return schemas.check(frame, schemas.SOURCES, "sources")


def _skipped_frame(skips: list[Skip]) -> pl.DataFrame:
    rows = [{"uri": s.uri, "reason": s.reason} for s in skips]
    frame = pl.DataFrame(rows, schema=schemas.SKIPPED).sort("uri", maintain_order=True)
    return schemas.check(frame, schemas.SKIPPED, "skipped_sources")


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _fail_if_strict(skip: Skip, strict: bool) -> None:
    if strict:
        raise SourceError(f"{skip.uri}: {skip.reason}; rerun without --strict to skip it")


def _nothing_usable(source_dir: Path, n_files: int, skips: list[Skip]) -> str:
    hint = FIX_HINT.format(dir=source_dir)
    if n_files == 0:
        return f"no source files in {source_dir} (hidden files are ignored); {hint}"
    shown = "; ".join(f"{s.uri}: {s.reason}" for s in skips[:3])
    more = f" (+{len(skips) - 3} more)" if len(skips) > 3 else ""
    return (
        f"no usable sources in {source_dir}: all {n_files} files were skipped "
        f"({len(skips)} skipped rows, e.g. {shown}{more}); {hint}"
    )
