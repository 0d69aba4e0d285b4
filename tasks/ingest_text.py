"""Text repair for ingest: extracted text -> the text a person reads, the same for every format.

:func:`repair` is the one entry: ftfy fixes mojibake, ligatures ("ﬀ" -> "ff"), byte-order and
control marks and line-break characters; then soft hyphens and zero-width spaces go, form feeds
are read as page breaks (page numbers and running heads dropped, footnotes at the foot of a page
moved to the end so a sentence or a word running on to the next page is whole, pages joined
without a paragraph break where a sentence runs on), words hyphenated across a line break are
rejoined, and whitespace is made canonical (:func:`normalize`). :func:`front_matter` and
:func:`heading_title` serve the markdown reader.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import ftfy
import yaml

_FTFY = ftfy.TextFixerConfig(
    unescape_html=False,  # markup is decoded by the readers; a literal "&amp;" in text stays
    fix_character_width=False,  # keep full-width CJK punctuation as written
    uncurl_quotes=False,  # keep typographic quotes as written
    explain=False,
)
_INVISIBLE = re.compile("[\u00ad\u200b\u2060\ufeff]")  # soft hyphen, zero-width space/joiner, BOM
_SOFT_HYPHEN_BREAK = re.compile("\u00ad[ \t]*\n[ \t]*")
# A word starts where no letter precedes it: without the look-behind, every position inside a long
# run of letters would be tried and the run rescanned from it (quadratic time).
_HYPHEN_BREAK = re.compile(r"(?<![^\W\d_])([^\W\d_]+)[-\u2010][ \t]*\n[ \t]*([^\W\d_A-Z][^\W\d_]*)")
_COMPOUND = re.compile(r"(?<![^\W\d_])[^\W\d_]+-[^\W\d_]+")
_PAGE_NUMBER = re.compile(
    r"^[-–—\s]*(?:page\s+)?(?:\d{1,4}|[ivx]{1,6})(?:\s*(?:of|/)\s*\d{1,4})?[-–—\s]*$", re.I
)
_FOOTNOTE_RULE = re.compile(r"^[ \t]*(?:_{5,}|-{10,}|—{3,})[ \t]*$")
_FOOTNOTE_START = re.compile(r"^[ \t]*(?:\d{1,3}|[*†‡])[ \t]+\S")
_RUN_ON_END = re.compile(r"[.!?:;。！？…\"”’)\]]$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
# Headings: each line is read a bounded number of times (a lazy group before a repeated class, or
# two unbounded groups around one character, rescans a long line from every position).
_ATX_HEADING = re.compile(r"^#{1,6}[ \t]+(.+)$", re.M)
_SETEXT_HEADING = re.compile(r"^(?=[^\n]*\S)([^\n]+)\n(?:=+|-+)[ \t]*$", re.M)
_EDGE_LINES = 2  # lines at the top and at the bottom of a page checked for page furniture


def repair(text: str) -> str:
    """Readable, canonical text (see the module doc). Pure; never raises for odd input."""
    text = ftfy.fix_text(text, _FTFY)
    text = _INVISIBLE.sub("", _SOFT_HYPHEN_BREAK.sub("", text))
    if "\f" in text:
        pages, notes = zip(
            *map(split_footnotes, strip_page_furniture(text.split("\f"))), strict=True
        )
        text = "\n\n".join(part for part in (join_pages(list(pages)), *notes) if part)
    return normalize(dehyphenate(text))


def normalize(text: str) -> str:
    """Canonical whitespace: ``\\n`` line ends, no trailing spaces, at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def dehyphenate(text: str) -> str:
    """Rejoin words hyphenated across a line break ("fac-\\ntors" -> "factors").

    The hyphen is kept ("well-\\nknown" -> "well-known") when the hyphenated form occurs
    elsewhere in ``text``, or when the next line starts with a capital letter.
    """
    compounds = {m.group(0).lower() for m in _COMPOUND.finditer(text)}

    def join(m: re.Match[str]) -> str:
        head, tail = m.group(1), m.group(2)
        keep = f"{head}-{tail}".lower() in compounds
        return f"{head}-{tail}" if keep else head + tail

    return _HYPHEN_BREAK.sub(join, text)


def strip_page_furniture(pages: list[str]) -> list[str]:
    """Pages without page numbers and running heads/feet in their first and last lines.

    A running head is an edge line that, with its digits ignored, recurs on at least 3 pages and
    on at least 30% of them.
    """
    shapes = Counter(s for page in pages for s in {_shape(line) for line in _edges(page)})
    floor = max(3, 0.3 * len(pages))
    running = {s for s, n in shapes.items() if n >= floor and s}
    return [_drop_edges(page, running) for page in pages]


def split_footnotes(page: str) -> tuple[str, str]:
    """``(body, footnotes)`` of one page: the footnotes are the lines below the page's last rule
    (``_____``) when the first of them starts with a note mark ("1 See ..."); else ``(page, "")``.
    """
    lines = page.split("\n")
    rules = [i for i, line in enumerate(lines) if _FOOTNOTE_RULE.match(line)]
    if rules:
        notes = [line.strip() for line in lines[rules[-1] + 1 :] if line.strip()]
        if notes and _FOOTNOTE_START.match(notes[0]):
            return "\n".join(lines[: rules[-1]]), "\n".join(notes)
    return page, ""


def join_pages(pages: list[str]) -> str:
    """One text from pages: a paragraph break after a page that ends a sentence, else a line."""
    parts: list[str] = []
    for page in (p.strip("\n") for p in pages):
        if page.strip():
            if parts:
                parts.append("\n\n" if _RUN_ON_END.search(parts[-1].rstrip()) else "\n")
            parts.append(page)
    return "".join(parts)


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``(fields, body)`` of a markdown text with YAML front matter; ``({}, text)`` without it.

    A leading ``---`` block that is not a YAML mapping is not front matter and stays in the body.
    """
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    try:
        fields = yaml.safe_load(m.group(1) or "")
    except yaml.YAMLError:
        return {}, text
    if not isinstance(fields, dict):
        return {}, text
    return {str(k): v for k, v in fields.items()}, text[m.end() :]


def heading_title(text: str) -> str | None:
    """The first markdown heading (``# Title`` or ``Title`` over ``===``), or None."""
    atx, setext = _ATX_HEADING.search(text), _SETEXT_HEADING.search(text)
    if atx and (not setext or atx.start() <= setext.start()):
        line = atx.group(1)
        title = line.rstrip(" \t#") or line[:1]  # a closing run of #s is not the title
    elif setext:
        title = setext.group(1)
    else:
        return None
    return " ".join(title.split()) or None


def _edges(page: str) -> list[str]:
    lines = [line for line in page.split("\n") if line.strip()]
    return lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]


def _shape(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def _drop_edges(page: str, running: set[str]) -> str:
    lines = page.split("\n")
    content = [i for i, line in enumerate(lines) if line.strip()]
    edge = set(content[:_EDGE_LINES] + content[-_EDGE_LINES:])
    return "\n".join(
        line
        for i, line in enumerate(lines)
        if i not in edge or not (_PAGE_NUMBER.match(line) or _shape(line) in running)
    )
