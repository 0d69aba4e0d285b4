"""Sections: one document's text -> sections of at most ``max_chars``, none below ``min_chars``.

Sections are slices of the text (stripped at their ends), so the line structure inside them —
list items, table rows, footnotes — is kept. A text too long for one section is cut at the best
boundary available, tried in this order:

0. a paragraph break, except right after a heading or a list intro (they stay with what follows);
1. any paragraph break, a sentence end (``. ! ?`` before a non-lowercase letter, not after an
   abbreviation, an initial or a list number; ``。！？`` anywhere) or the start of a list item;
2. a clause mark (``, ; :`` and ``，、；：``) or a line break;
3. a space;
4. anywhere (a run of text with none of the above).

Pieces are packed greedily. A section shorter than ``min_chars`` is merged into a neighbour, or,
when the two together are too long, the boundary between them is moved so both are long enough.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_WESTERN_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+")
_CJK_END = re.compile(r"[。！？][」』”’）)]*\s*")
_LIST_ITEM = re.compile(r"\n(?=[ \t]*(?:\d{1,3}[.)]|[-*•·]|\(?[a-zA-Z0-9]{1,3}\))[ \t])")
_CLAUSE = re.compile(r"[,;:]\s+|[，、；：]\s*|\n")
_SPACE = re.compile(r"\s+")
_ROMAN = re.compile(r"[ivxlc]+", re.I)
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "no", "nos", "v", "vs", "cf", "e.g", "i.e",
    "al", "fig", "figs", "eq", "inc", "corp", "co", "ltd", "art", "sec", "secs", "para", "paras",
    "p", "pp", "ch", "vol", "ed", "eds", "id", "ibid", "u.s", "u.k", "op", "cit", "approx",
})  # fmt: skip
_LEAD_MAX_CHARS = 120
_SENTENCE_MARKS = '.!?。！？…"”’)]'


def split_sections(text: str, max_chars: int, min_chars: int = 1) -> list[str]:
    """Sections of ``text`` (see the module doc): each at most ``max_chars`` characters and, when
    ``text`` has at least ``2 * min_chars`` characters and ``max_chars >= 2 * min_chars``, at
    least ``min_chars``. Empty text -> ``[]``.
    """
    pieces = _merge_short(_split(text, max_chars, 0), min_chars, max_chars)
    return [p.strip() for p in pieces if p.strip()]


def sentence_ends(text: str) -> Iterator[int]:
    """Offsets just after each sentence end (and its trailing space) in ``text``."""
    for m in _WESTERN_END.finditer(text):
        if _ends_sentence(text, m.start(), m.end()):
            yield m.end()
    for m in _CJK_END.finditer(text):
        yield m.end()


def is_lead(paragraph: str) -> bool:
    """True for a heading or a list intro: it belongs with the paragraph after it."""
    para = paragraph.strip()
    if para.startswith("#") or para.endswith((":", "：")):
        return True
    return "\n" not in para and 0 < len(para) <= _LEAD_MAX_CHARS and para[-1] not in ".!?。！？…,;"


# --- cutting -------------------------------------------------------------------------------


def _split(text: str, max_chars: int, tier: int) -> list[str]:
    if len(text.rstrip()) <= max_chars:
        return [text]
    if tier == len(_TIERS):
        return [text[i : i + max_chars] for i in range(0, len(text), max_chars)]
    pieces: list[str] = []
    for part in _cut(text, _TIERS[tier](text)):
        pieces.extend(_split(part, max_chars, tier + 1))
    return _pack(pieces, max_chars)


def _cut(text: str, offsets: Iterator[int] | list[int]) -> list[str]:
    points = sorted({o for o in offsets if 0 < o < len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    out: list[str] = []
    current = ""
    for piece in pieces:
        if current and len((current + piece).rstrip()) > max_chars:
            out.append(current)
            current = piece
        else:
            current += piece
    return [*out, current] if current else out


def _paragraph_breaks(text: str) -> list[int]:
    breaks = [m.end() for m in _PARAGRAPH.finditer(text)]
    starts = [0, *breaks]
    return [b for b, start in zip(breaks, starts, strict=False) if not is_lead(text[start:b])]


def _all_breaks(text: str) -> list[int]:
    return [
        *(m.end() for m in _PARAGRAPH.finditer(text)),
        *sentence_ends(text),
        *(m.end() for m in _LIST_ITEM.finditer(text)),
    ]


def _clauses(text: str) -> list[int]:
    return [m.end() for m in _CLAUSE.finditer(text)]


def _spaces(text: str) -> list[int]:
    return [m.end() for m in _SPACE.finditer(text)]


_TIERS: tuple[Callable[[str], list[int]], ...] = (_paragraph_breaks, _all_breaks, _clauses, _spaces)


def _ends_sentence(text: str, start: int, end: int) -> bool:
    following = text[end : end + 1]
    if following and following.islower():
        return False
    if text[start] != ".":
        return True
    first, last = _word_before(text, start)
    token = text[first:last].lstrip("([\"'“‘").lower()
    if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
        return False
    numbered = token.isdigit() or bool(_ROMAN.fullmatch(token))
    opens_line = last > first and _blank_before(text, first)
    return not (opens_line and numbered)  # "12." / "iv." opening a line numbers an item


def _word_before(text: str, start: int) -> tuple[int, int]:
    """Span of the last word before ``start`` on its line (empty if none). Read backwards from
    ``start``, never to the line's start: a long line with many sentence ends stays linear."""
    last = start
    while last > 0 and text[last - 1] != "\n" and text[last - 1].isspace():
        last -= 1
    first = last
    while first > 0 and not text[first - 1].isspace():
        first -= 1
    return first, last


def _blank_before(text: str, offset: int) -> bool:
    """True when only spaces precede ``offset`` on its line."""
    while offset > 0 and text[offset - 1] != "\n":
        if not text[offset - 1].isspace():
            return False
        offset -= 1
    return True


# --- short sections ------------------------------------------------------------------------


def _merge_short(pieces: list[str], min_chars: int, max_chars: int) -> list[str]:
    out = list(pieces)
    first = 0  # no piece before it is short: the search resumes there, not at the start
    for _ in range(len(pieces)):
        short = next((i for i in range(first, len(out)) if len(out[i].strip()) < min_chars), None)
        if short is None or len(out) < 2:
            break
        first = short - 1 if short > 0 else short
        joined = out[first] + out[first + 1]
        if len(joined.rstrip()) > max_chars and 0 < short < len(out) - 1:
            after = out[short] + out[short + 1]
            if len(after.rstrip()) <= max_chars:
                first, joined = short, after
        out[first : first + 2] = _rebalance(joined, min_chars, max_chars)
    return out


def _rebalance(text: str, min_chars: int, max_chars: int) -> list[str]:
    """``text`` whole if it fits, else cut in two at the best boundary leaving both halves at
    least ``min_chars`` and at most ``max_chars`` (moving as little as possible to the second).
    """
    if len(text.rstrip()) <= max_chars:
        return [text]
    for tier in (*_TIERS, _anywhere):
        fits = [
            o
            for o in tier(text)
            if min_chars <= len(text[:o].strip())
            and len(text[:o].rstrip()) <= max_chars
            and min_chars <= len(text[o:].strip())
            and len(text[o:].rstrip()) <= max_chars
        ]
        if fits:
            cut = max(fits)
            return [text[:cut], text[cut:]]
    return [text]


def _anywhere(text: str) -> list[int]:
    return list(range(1, len(text)))
