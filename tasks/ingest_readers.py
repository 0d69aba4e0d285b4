"""Readers for the ingest stage: one file -> documents and/or skip rows, never an exception.

Each format has a reader ``(bytes, template Doc, Ingest) -> list[Doc | Skip]``; a whole-file
problem raises ``_Unusable`` inside the reader and becomes one :class:`Skip` in
:func:`read_file`, and so does any other exception a reader or its library raises (e.g. a
``RecursionError`` from a malformed PDF), named by type and message. Text formats are UTF-8; a
byte-order mark is dropped in every format (UTF-16/32 with a mark are decoded). Every text goes
through :func:`tasks.ingest_text.repair`.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
import pypdf
from pypdf.errors import PyPdfError

from autodata.settings import Ingest
from tasks.ingest_deadline import Watchdog
from tasks.ingest_files import uri_of
from tasks.ingest_html import html_to_text
from tasks.ingest_tex import tex_to_text
from tasks.ingest_text import front_matter, heading_title, normalize, repair

__all__ = ["SUPPORTED", "Doc", "Skip", "domain_of", "metadata_json", "normalize", "read_file"]

SUPPORTED = (".htm", ".html", ".jsonl", ".md", ".parquet", ".pdf", ".tex", ".txt")
MB = 1024 * 1024
_MAX_REASON = 300
_MAX_FRONT_MATTER_VALUES = 100_000
_BOMS = (  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class Doc:
    """One usable document (a file, or one jsonl/parquet record) before splitting."""

    file: str  # posix path relative to source_dir
    record: int  # 1-based record number in jsonl/parquet; 0 for whole files
    domain: str
    title: str
    text: str  # repaired
    metadata: str = "{}"  # JSON object: a record's other fields, a markdown file's front matter

    @property
    def uri(self) -> str:
        return f"{self.file}#record={self.record}" if self.record else self.file


@dataclass(frozen=True)
class Skip:
    """A file or record that was not used, and why."""

    uri: str
    reason: str


class _Unusable(Exception):
    """Raised inside a reader when the whole file cannot be used; becomes one Skip row."""


def read_file(
    path: Path, source_dir: Path, cfg: Ingest, watchdog: Watchdog | None = None
) -> list[Doc | Skip]:
    """Read one file into documents and/or skip rows; never raises for a bad file.

    Any exception from the reader (ours or its library's) becomes one Skip naming its type and
    message; only ``BaseException``s that are not ``Exception`` (Ctrl-C, exit) pass through. A
    file whose reading outlasts ``watchdog``'s limit (``ingest.max_parse_s``) is one Skip too.
    """
    rel = uri_of(path, source_dir)
    ext = path.suffix.lower()
    reader = _READERS.get(ext)
    if reader is None:
        shown = ext or "(none)"
        return [Skip(rel, f"unsupported extension {shown} (supported: {', '.join(SUPPORTED)})")]
    template = Doc(rel, 0, domain_of(rel, cfg.domains), PurePosixPath(rel).stem, "")

    def read() -> list[Doc | Skip]:
        data = _read_bytes(path, cfg.max_file_mb)
        return [_vet(item, cfg.min_chars) for item in reader(data, template, cfg)]

    try:
        items = (watchdog or Watchdog(None)).run(read)
    except _Unusable as exc:
        return [Skip(rel, str(exc))]
    except Exception as exc:  # a library's surprise is one skipped row, by design
        return [Skip(rel, _crash_reason(exc, ext))]
    if items is None:
        return [Skip(rel, _slow_reason(cfg.max_parse_s))]
    return items


def _slow_reason(limit_s: float) -> str:
    return (
        f"reading took longer than ingest.max_parse_s={limit_s:g} s (a pathological or very "
        "large file?); split or convert it, or raise ingest.max_parse_s"
    )


def _crash_reason(exc: Exception, ext: str) -> str:
    """One line: ``.pdf reader failed (Type: message); ...``, the message cut to a sane length."""
    message = " ".join(str(exc).split())
    if len(message) > _MAX_REASON:
        message = message[: _MAX_REASON - 1] + "…"
    shown = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"{ext} reader failed ({shown}); the file may be malformed: re-export or convert it"


def domain_of(rel: str, domains: dict[str, str]) -> str:
    """Domain label of a relative path: its first-level directory, mapped via ``domains``."""
    parts = rel.split("/")
    if len(parts) == 1:
        return "general"
    return domains.get(parts[0], parts[0])


def _read_bytes(path: Path, max_file_mb: float) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the ingest, a device never end
            raise _Unusable("not a regular file (a pipe, socket or device); remove it")
        size = info.st_size
        if size > max_file_mb * MB:
            raise _Unusable(
                f"too large ({size / MB:.3g} MB > ingest.max_file_mb={max_file_mb}); "
                "split the file or raise ingest.max_file_mb"
            )
        if size == 0:
            raise _Unusable("empty file")
        return path.read_bytes()
    except OSError as exc:
        raise _Unusable(
            f"unreadable ({exc.strerror or exc}); check the file and its permissions"
        ) from exc


def _decode(data: bytes) -> str:
    """Text of ``data``: UTF-8 without its mark, or UTF-16/32 when a mark says so."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            if encoding != "utf-8":
                return _decode_marked(data[len(bom) :], encoding)
            data = data[len(bom) :]
            break
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _Unusable(
            f"binary data (NUL byte at offset {nul}), not text; if it is UTF-16, re-save as UTF-8"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise _Unusable(
            f"not UTF-8 (byte 0x{bad:02x} at offset {exc.start}); re-save as UTF-8"
        ) from exc


def _decode_marked(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _Unusable(
            f"not {encoding.upper()} despite its byte-order mark (bad bytes at offset "
            f"{exc.start}); re-save as UTF-8"
        ) from exc


def _read_text(data: bytes, doc: Doc, cfg: Ingest) -> list[Doc]:
    text = repair(_decode(data))
    return [_with(doc, text=text, title=_first_line_title(text) or doc.title)]


def _read_markdown(data: bytes, doc: Doc, cfg: Ingest) -> list[Doc]:
    fields, body = front_matter(repair(_decode(data)))
    if _too_many_values(fields, _MAX_FRONT_MATTER_VALUES):  # before json.dumps, which is C
        raise _Unusable(
            f"front matter of more than {_MAX_FRONT_MATTER_VALUES:,} values once its YAML aliases "
            "are expanded (an alias bomb?); write the values out, or remove the front matter"
        )
    text = normalize(body)
    given = fields.pop("title", None)
    title = str(given).strip() if given not in (None, "") else None
    title = title or heading_title(text) or _first_line_title(text) or doc.title
    return [_with(doc, text=text, title=" ".join(title.split()), metadata=metadata_json(fields))]


def _too_many_values(value: Any, limit: int) -> bool:
    """True when ``value``, its aliases expanded, holds more than ``limit`` values (a YAML alias
    bomb is a few lines that json.dumps would expand into billions, in C, uninterruptibly)."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return False


def _first_line_title(text: str) -> str | None:
    """The first line with a letter or digit (markup like ``---`` is no title), if short; its
    runs of spaces (layout text's columns) read as one."""
    for line in text.split("\n"):
        line = " ".join(line.strip().lstrip("#").split())
        if any(c.isalnum() for c in line):
            return line if len(line) <= 120 else None
    return None


def _read_html(data: bytes, doc: Doc, cfg: Ingest) -> list[Doc]:
    title, text = html_to_text(_decode(data))
    text = repair(text)
    return [_with(doc, text=text, title=title or _first_line_title(text) or doc.title)]


def _read_tex(data: bytes, doc: Doc, cfg: Ingest) -> list[Doc]:
    title, text = tex_to_text(_decode(data))
    text = repair(text)
    return [_with(doc, text=text, title=title or _first_line_title(text) or doc.title)]


def _read_pdf(data: bytes, doc: Doc, cfg: Ingest) -> list[Doc]:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _opens_without_password(reader):
            raise _Unusable(
                "encrypted PDF (password-protected); remove the password or export the text"
            )
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except PyPdfError as exc:
        raise _Unusable(f"unreadable PDF ({exc}); re-export it or convert it to text") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # malformed object trees
        raise _Unusable(f"unreadable PDF ({type(exc).__name__}: {exc}); re-export it") from exc
    text = repair("\f".join(pages))  # form feeds: page breaks, see repair()
    if not text:
        raise _Unusable("PDF has no extractable text (scanned images?); run OCR and retry")
    return [_with(doc, text=text, title=(meta_title or "").strip() or doc.title)]


def _opens_without_password(reader: pypdf.PdfReader) -> bool:
    """True for PDFs with only an owner password (readable by anyone)."""
    try:
        return bool(reader.decrypt(""))
    except PyPdfError:  # e.g. DependencyError: AES needs the `cryptography` package
        return False


def _read_jsonl(data: bytes, doc: Doc, cfg: Ingest) -> list[Doc | Skip]:
    records: list[tuple[int, dict[str, Any] | Skip]] = []
    for n, line in enumerate(_decode(data).split("\n"), start=1):
        if line.strip():
            records.append((n, _parse_json_line(line, f"{doc.file}#record={n}")))
    if not records:
        raise _Unusable("only whitespace, no JSON lines")
    dicts = [r for _, r in records if isinstance(r, dict)]
    if dicts and not any(cfg.text_column in r for r in dicts):
        raise _Unusable(_missing_column(cfg.text_column, sorted({k for r in dicts for k in r})))
    return [r if isinstance(r, Skip) else _record(r, n, doc, cfg) for n, r in records]


def _parse_json_line(line: str, uri: str) -> dict[str, Any] | Skip:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return Skip(uri, f"not valid JSON ({exc.msg} at column {exc.colno}); fix the line")
    if not isinstance(value, dict):
        return Skip(
            uri, f"not a JSON object (got {type(value).__name__}); write one object per line"
        )
    return value


def _read_parquet(data: bytes, doc: Doc, cfg: Ingest) -> list[Doc | Skip]:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise _Unusable(f"unreadable parquet ({type(exc).__name__}); rewrite the file") from exc
    col = cfg.text_column
    if frame.height == 0:
        raise _Unusable("no rows")
    if col not in frame.columns:
        raise _Unusable(_missing_column(col, frame.columns))
    if frame.schema[col] != pl.String:
        raise _Unusable(
            f"column '{col}' is {frame.schema[col]}, not text; set ingest.text_column to a text column"
        )
    return [_record(row, n, doc, cfg) for n, row in enumerate(frame.iter_rows(named=True), 1)]


def _missing_column(col: str, columns: Iterable[str]) -> str:
    return (
        f"no '{col}' column (columns: {', '.join(columns) or 'none'}); "
        "set ingest.text_column to the column holding the text"
    )


def _record(row: dict[str, Any], n: int, doc: Doc, cfg: Ingest) -> Doc | Skip:
    uri = f"{doc.file}#record={n}"
    col = cfg.text_column
    value = row.get(col)
    if col not in row:
        return Skip(uri, f"record has no '{col}' field")
    if not isinstance(value, str):
        got = "null" if value is None else type(value).__name__
        return Skip(uri, f"'{col}' is {got}, not text")
    title, domain = row.get("title"), row.get("domain")
    return _with(
        doc,
        record=n,
        text=repair(value),
        title=str(title) if title not in (None, "") else f"{doc.title} #{n}",
        domain=str(domain) if domain not in (None, "") else doc.domain,
        metadata=metadata_json({k: v for k, v in row.items() if k not in (col, "title", "domain")}),
    )


def metadata_json(fields: dict[str, Any]) -> str:
    """``fields`` as a JSON object string, keys sorted; values JSON cannot hold (dates, bytes,
    NaN) become strings or null, so this never raises."""
    clean = {
        str(k): None if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in fields.items()
    }
    return json.dumps(clean, ensure_ascii=False, sort_keys=True, default=str)


def _vet(item: Doc | Skip, min_chars: int) -> Doc | Skip:
    if isinstance(item, Skip):
        return item
    if not item.text:
        return Skip(item.uri, "only whitespace, no text")
    if len(item.text) < min_chars:
        return Skip(item.uri, f"too short ({len(item.text)} chars < ingest.min_chars={min_chars})")
    return item


def _with(doc: Doc, **changes: Any) -> Doc:
    return Doc(**{**doc.__dict__, **changes})


_Reader = Callable[[bytes, Doc, Ingest], list[Doc] | list[Doc | Skip]]
_READERS: dict[str, _Reader] = {
    ".txt": _read_text,
    ".md": _read_markdown,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".tex": _read_tex,
    ".jsonl": _read_jsonl,
    ".parquet": _read_parquet,
}
