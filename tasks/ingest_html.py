"""HTML -> ``(title, text)`` of the page's main content, read the way a person reads it.

Dropped: ``<head>`` (its ``<title>`` becomes the title, never body text), scripts, styles,
forms' controls, hidden elements, comments, and boilerplate: ``<nav>``, ``<aside>``, page-level
``<header>``/``<footer>``, ARIA navigation/banner/contentinfo/search landmarks, elements whose
class or id names a menu, breadcrumb, sidebar, footer, cookie notice or share bar, and footnote
back-links ("Back to citation", "↩"). The one ``<main>`` (or the one ``<article>``) is the body
when it holds most of the page's text.

Kept: block structure as paragraphs; one table row per line with cells joined by `` | ``; list
items one per line as ``1.``/``-`` (nested lists indented); footnote markers as ``[n]``.
Whitespace in the markup is insignificant outside ``<pre>``.

The parsed tree is never edited: what is dropped is marked (by id) in a few passes over it, and
:mod:`tasks.ingest_html_render` reads the rest once. Editing it in place, as this module did,
made every insertion scan its siblings and every string search its ancestors — quadratic in the
page (225 KB took 46 s, 4.5 MB never finished); the text is the same to the byte.

Trafilatura (Apache-2.0) was tried for main-content extraction and not used: on pages without
``<main>``/``<article>`` it dropped the opening heading, lists and footnotes of the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bs4 import BeautifulSoup, PageElement, Tag

from tasks.ingest_html_render import BLOCK_TAGS, INDENT, is_text, render, walk

__all__ = ["BLOCK_TAGS", "html_to_text"]

_DROP_TAGS = (
    "script", "style", "noscript", "template", "head", "title", "meta", "link", "svg", "canvas",
    "iframe", "object", "embed", "input", "select", "button", "textarea", "nav", "aside",
)  # fmt: skip
_BOILER_ROLES = {
    "navigation",
    "banner",
    "contentinfo",
    "search",
    "menu",
    "menubar",
    "complementary",
}
_BOILER_WORDS = {
    "nav", "navbar", "navigation", "menu", "menubar", "breadcrumb", "breadcrumbs", "sidebar",
    "footer", "skip", "skiplink", "cookie", "cookies", "share", "sharing", "social", "toolbar",
    "masthead", "pagination", "pager",
}  # fmt: skip
_BACKLINK = re.compile(
    r"^(?:(?:back|return|jump|go) to (?:the )?(?:top|citation|text|reference|note|content|main)"
    r"\w*|skip to \w.*|[↩↑⤴^]\ufe0e?\ufe0f?)$",
    re.I,
)
_LANDMARKS = ("main", "article")


def html_to_text(markup: str) -> tuple[str, str]:
    """``(title, text)``: title from ``<title>`` (or "" if none), text of the main content.

    Text lines are stripped and blank runs kept as single blank lines; nothing else is
    normalized here (see :func:`tasks.ingest_text.repair`). Time and memory grow linearly with
    the size of the markup, however deep or wide its tree: the tree is read, never edited.
    """
    soup = BeautifulSoup(markup, "html.parser")
    title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
    dropped = _noise(soup)
    text = render(_main_content(soup, dropped), dropped)
    lines = (line.strip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return title, text.replace(INDENT, "  ").strip()


# --- what is not content ------------------------------------------------------------------


def _noise(soup: BeautifulSoup) -> set[int]:
    """Ids of the tags whose subtree is not read: dropped tags, boilerplate, back-links."""
    dropped: set[int] = set()
    words, holds_landmark = _tally(soup)
    half_page = words[id(soup)] / 2
    stack: list[tuple[object, bool]] = [(c, False) for c in reversed(soup.contents)]
    while stack:  # document order; a dropped tag's subtree is not entered
        node, in_landmark = stack.pop()
        if not isinstance(node, Tag):
            continue
        if node.name in _DROP_TAGS or (
            id(node) not in holds_landmark
            and _is_boilerplate(node, in_landmark)
            and _own_words(node, words) <= half_page  # boilerplate is never most of the page
        ):
            dropped.add(id(node))
            continue
        inside = in_landmark or node.name in _LANDMARKS
        stack.extend((c, inside) for c in reversed(node.contents))
    for node in walk(soup, lambda t: id(t) in dropped):
        if isinstance(node, Tag) and node.name == "a" and _is_backlink(node, dropped):
            dropped.add(id(node))
    return dropped


def _is_backlink(link: Tag, dropped: set[int]) -> bool:
    return bool(_BACKLINK.match(" ".join(_words(link, lambda t: id(t) in dropped))))


def _tally(soup: BeautifulSoup) -> tuple[dict[int, int], set[int]]:
    """Words per tag (outside dropped tags) and the ids of tags holding a main or article."""
    order = list(walk(soup, lambda t: t.name in _DROP_TAGS))
    words: dict[int, int] = dict.fromkeys(map(id, order), 0)
    words[id(soup)] = 0
    holds: set[int] = set()
    for node in reversed(order):  # children before their parents
        parent = id(node.parent)
        if isinstance(node, Tag):
            words[parent] += words[id(node)]
            if node.name in _LANDMARKS or id(node) in holds:
                holds.add(parent)
        elif is_text(node):
            words[parent] += len(node.split())
    return words, holds


def _own_words(tag: Tag, words: dict[int, int]) -> int:
    """``tag``'s words as its ``get_text`` counts them: ``words`` for most tags; a ruby
    annotation (``<rt>``, ``<rp>``) reads only its own kind of string."""
    if _types(tag) == Tag.MAIN_CONTENT_STRING_TYPES:
        return words[id(tag)]
    return len(_words(tag, lambda t: t.name in _DROP_TAGS))


def _is_boilerplate(tag: Tag, in_landmark: bool) -> bool:
    if tag.name in ("html", "body", *_LANDMARKS):
        return False
    if tag.has_attr("hidden") or tag.get("aria-hidden") == "true":
        return True
    if re.search(r"display\s*:\s*none", str(tag.get("style", ""))):
        return True
    if tag.name in ("header", "footer") and not in_landmark:
        return True
    if str(tag.get("role", "")).lower() in _BOILER_ROLES:
        return True
    names = " ".join([*_attr_list(tag, "class"), *_attr_list(tag, "id")]).lower()
    return bool(_BOILER_WORDS & set(re.split(r"[-_\s]+", names)))


def _attr_list(tag: Tag, name: str) -> list[str]:
    value = tag.get(name)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _main_content(soup: BeautifulSoup, dropped: set[int]) -> Tag:
    """The one ``<main>`` (else ``role=main``) or the one ``<article>`` holding at least half the
    words of the body; else the body."""
    tags = [n for n in walk(soup, lambda t: id(t) in dropped) if isinstance(n, Tag)]
    body = next((t for t in tags if t.name == "body"), soup)
    mains = [t for t in tags if t.name == "main"] or [t for t in tags if t.get("role") == "main"]
    for found in (mains, [t for t in tags if t.name == "article"]):
        if len(found) == 1 and _n_words(found[0], dropped) >= 0.5 * _n_words(body, dropped):
            return found[0]
    return body


def _n_words(tag: Tag, dropped: set[int]) -> int:
    return len(_words(tag, lambda t: id(t) in dropped))


def _words(tag: Tag, skip: Callable[[Tag], bool]) -> list[str]:
    """``tag.get_text(" ").split()`` without the tags ``skip`` leaves out."""
    types = _types(tag)
    return [w for n in walk(tag, skip) if type(n) in types for w in str(n).split()]


def _types(tag: Tag) -> set[type[PageElement]]:
    """The kinds of string ``tag.get_text`` reads (a ruby annotation reads only its own)."""
    return set(tag.interesting_string_types or Tag.MAIN_CONTENT_STRING_TYPES)
