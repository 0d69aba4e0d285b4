"""The text of an HTML tree, read once in document order: how :mod:`tasks.ingest_html` renders.

One pass over the tree, with an explicit stack (a page of unclosed ``<p>`` is a tree thousands
of levels deep), never editing it, so time grows linearly with the size of the page. Rules, in
the order they take precedence:

- whitespace in a string collapses to one space, except inside ``<pre>``; ``<br>`` is a line;
- a table row is one line, its cells' words joined by `` | ``; nothing inside a cell is
  rendered further (no lists, footnote marks or blocks);
- a footnote reference (a linked superscript, or an in-page link whose text is a short number
  or mark) reads ``[n]``;
- a list is its items one per line as ``1.``/``-``, a nested list indented under its item; only
  ``<li>`` children of a list are read;
- a definition term or description is a line, a block a paragraph (a line inside a list item).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeGuard

from bs4 import CData, NavigableString, PageElement, Tag

BLOCK_TAGS = frozenset({
    "p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "blockquote",
    "pre", "table", "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "figure",
    "figcaption", "address", "details", "summary", "caption",
})  # fmt: skip
INDENT = "\ue000"  # survives line stripping; the caller makes it two spaces
_TEXT_TYPES = (NavigableString, CData)  # what bs4's get_text reads (no comments, scripts, ruby)
_NOTE_MARK = re.compile(r"[0-9]{1,3}|[*†‡§]{1,3}|[a-z]")
_SPACES = re.compile(r"\s+")
_LISTS = ("ol", "ul")
_FLOW, _ITEM, _CELL = "flow", "item", "cell"  # modes: page text, inside a list item, in a cell


_OWN_TEXT = ("row", "cell", "list", "item")  # kinds whose text is made from their children's


@dataclass
class _Frame:
    """An open tag. ``pieces`` is where text inside it goes: its own list for a tag whose text
    is made from its children's (a row, cell, list, item), else its parent's — so a tree
    thousands of levels deep is still read in time linear in its size."""

    kind: str  # plain, block, line, row, cell, list, item
    mode: str
    parent: _Frame | None
    pieces: list[str] = field(default_factory=list)
    pre: bool = False  # inside <pre>
    sup: bool = False  # inside <sup>
    lists: int = 0  # <ol>/<ul> tags among this tag and its ancestors
    name: str = ""
    number: int = 1  # list: the next item's number; item: its marker


def walk(root: Tag, skip: Callable[[Tag], bool]) -> Iterator[PageElement]:
    """``root``'s descendants in document order, leaving out each tag for which ``skip`` is true
    with its subtree (``skip`` is asked again after a tag is yielded: a tag the caller drops as
    it sees it is not entered)."""
    stack = list(reversed(root.contents))
    while stack:
        node = stack.pop()
        if isinstance(node, Tag):
            if skip(node):
                continue
            yield node
            if not skip(node):
                stack.extend(reversed(node.contents))
        else:
            yield node


def is_text(node: PageElement) -> TypeGuard[NavigableString]:
    """A string bs4's ``get_text`` reads: not a comment, doctype, script or ruby annotation."""
    return type(node) in _TEXT_TYPES


def render(root: Tag, dropped: set[int], mode: str = _FLOW) -> str:
    """The text of ``root``'s subtree without the tags whose ids are in ``dropped`` (module doc).

    In ``cell`` mode, the words only, one space apart (a table cell, a link's text).
    """
    chain = [root, *root.parents]
    top = _Frame("cell" if mode == _CELL else "plain", mode, None)
    top.pre = any(t.name == "pre" for t in chain)
    top.sup = any(t.name == "sup" for t in chain)
    top.lists = sum(t.name in _LISTS for t in chain)
    stack: list[_Frame | tuple[PageElement, _Frame]] = [(c, top) for c in reversed(root.contents)]
    while stack:
        entry = stack.pop()
        if isinstance(entry, _Frame):
            _close(entry)
            continue
        node, parent = entry
        if not isinstance(node, Tag):
            if is_text(node):
                keep = parent.pre or type(node) is not NavigableString
                parent.pieces.append(str(node) if keep else _SPACES.sub(" ", node))
        elif id(node) not in dropped:
            frame = _open(node, parent, dropped)
            if frame is not None:
                stack.append(frame)
                stack.extend((c, frame) for c in reversed(_children(node, frame, dropped)))
    return _joined(top)


def _open(tag: Tag, parent: _Frame, dropped: set[int]) -> _Frame | None:
    """The frame of ``tag``, or None when its text is already in ``parent`` (``<br>``, a
    footnote mark)."""
    name, mode = tag.name, parent.mode
    if name == "br":
        parent.pieces.append("\n")
        return None
    if parent.kind == "row":
        kind, mode = "cell", _CELL
    elif parent.kind == "list":
        kind, mode = "item", _ITEM
    elif name == "tr":
        kind = "row"
    elif mode == _CELL:
        kind = "plain"
    elif name == "a" and (mark := _footnote_mark(tag, parent, dropped)):
        parent.pieces.append(f"[{mark}]")
        return None
    elif name in _LISTS:
        kind = "list"
    elif name in ("dt", "dd") and mode == _FLOW:
        kind = "line"
    else:
        kind = "block" if name in BLOCK_TAGS else "plain"
    own = kind in _OWN_TEXT
    frame = _Frame(kind, mode, parent, [] if own else parent.pieces, name=name)
    if not own:
        frame.pieces.append(_edge(frame))
    frame.pre, frame.sup = parent.pre or name == "pre", parent.sup or name == "sup"
    frame.lists = parent.lists + (name in _LISTS)
    if kind == "list":
        frame.number = _int(tag.get("start"), 1)
    elif kind == "item":  # numbered in document order: an item opens after the one before
        frame.number = _int(tag.get("value"), parent.number)
        parent.number = frame.number + 1
    return frame


def _children(tag: Tag, frame: _Frame, dropped: set[int]) -> list[PageElement]:
    """What is read of ``tag``: a row's cells, a list's items, else everything."""
    wanted = {"row": ("td", "th"), "list": ("li",)}.get(frame.kind)
    if wanted is None:
        return list(tag.contents)
    return [c for c in tag.contents if isinstance(c, Tag) and c.name in wanted]


def _edge(frame: _Frame) -> str:
    """What stands before and after a tag's text: a paragraph break around a block (a line
    break inside a list item), a line break around a definition term or description."""
    if frame.kind == "block":
        return "\n" if frame.mode == _ITEM else "\n\n"
    return "\n" if frame.kind == "line" else ""


def _close(frame: _Frame) -> None:
    """Hand the text of a finished tag to its parent."""
    parent = frame.parent
    assert parent is not None  # the top frame is never closed
    if frame.kind not in _OWN_TEXT:
        frame.pieces.append(_edge(frame))  # its text is in its parent's pieces already
    elif frame.kind == "item":
        parent.pieces.extend(_item_lines(_joined(frame), frame.number, parent))
    elif frame.kind == "row":
        parent.pieces.append(f"{' | '.join(frame.pieces)}\n" if any(frame.pieces) else "")
    elif frame.kind == "list":
        sep = "\n" if frame.lists > 1 else "\n\n"  # nested in another list: no blank line
        parent.pieces.append(sep + "\n".join(frame.pieces) + sep)
    else:
        parent.pieces.append(_joined(frame))


def _joined(frame: _Frame) -> str:
    if frame.kind == "cell":  # bs4's get_text(" "): strings one space apart; then its words
        return " ".join(" ".join(frame.pieces).split())
    return "".join(frame.pieces)


def _item_lines(text: str, number: int, lst: _Frame) -> list[str]:
    """An item's lines: the first with its marker, the rest indented under it."""
    depth = lst.lists - 1
    pad = INDENT * depth
    marker = f"{number}." if lst.name == "ol" else "-"
    parts = [p.strip() for p in text.split("\n") if p.strip()]
    if not parts:
        return []
    rest = (p if p.startswith(INDENT) else f"{pad}{INDENT}{p}" for p in parts[1:])
    return [f"{pad}{marker} {parts[0]}", *rest]


def _footnote_mark(link: Tag, parent: _Frame, dropped: set[int]) -> str | None:
    """The mark of a footnote reference: a linked superscript (``<sup><a href="#fn1">1</a>``)
    or an in-page link whose text is a short number or mark (``<a href="#fn1">1</a>``)."""
    mark = render(link, dropped, _CELL).strip("[]")
    if not 0 < len(mark) <= 4:
        return None
    inside = walk(link, lambda t: id(t) in dropped or t.name == "tr")  # a row is its text now
    sup = parent.sup or any(isinstance(n, Tag) and n.name == "sup" for n in inside)
    in_page = str(link.get("href", "")).startswith("#") and bool(_NOTE_MARK.fullmatch(mark))
    return mark if sup or in_page else None


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default
