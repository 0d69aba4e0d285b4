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

Trafilatura (Apache-2.0) was tried for main-content extraction and not used: on pages without
``<main>``/``<article>`` it dropped the opening heading, lists and footnotes of the body.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Comment, NavigableString, Tag

BLOCK_TAGS = (
    "p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "blockquote",
    "pre", "table", "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "figure",
    "figcaption", "address", "details", "summary", "caption",
)  # fmt: skip
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
_NOTE_MARK = re.compile(r"[0-9]{1,3}|[*†‡§]{1,3}|[a-z]")
_CELLS = ("td", "th")
_INDENT = "\ue000"  # survives line stripping; becomes two spaces at the end


def html_to_text(markup: str) -> tuple[str, str]:
    """``(title, text)``: title from ``<title>`` (or "" if none), text of the main content.

    Text lines are stripped and blank runs kept as single blank lines; nothing else is
    normalized here (see :func:`tasks.ingest_text.repair`).
    """
    soup = BeautifulSoup(markup, "html.parser")
    title = " ".join(soup.title.get_text(" ").split()) if soup.title else ""
    _drop_noise(soup)
    root = _main_content(soup)
    _collapse_whitespace(root)
    _render_tables(root)
    _render_footnote_marks(root)
    _render_lists(root)
    _render_blocks(root)
    lines = (line.strip() for line in root.get_text().split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return title, text.replace(_INDENT, "  ").strip()


def _drop_noise(soup: BeautifulSoup) -> None:
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    page_words = _n_words(soup)
    for tag in soup.find_all(True):  # boilerplate is never most of the page: a guard on the names
        if not tag.decomposed and _is_boilerplate(tag) and _n_words(tag) <= page_words / 2:
            tag.decompose()
    for link in soup.find_all("a"):
        if not link.decomposed and _BACKLINK.match(" ".join(link.get_text(" ").split())):
            link.decompose()


def _is_boilerplate(tag: Tag) -> bool:
    if tag.name in ("html", "body", "main", "article") or tag.find(["main", "article"]):
        return False
    if tag.has_attr("hidden") or tag.get("aria-hidden") == "true":
        return True
    if re.search(r"display\s*:\s*none", str(tag.get("style", ""))):
        return True
    if tag.name in ("header", "footer") and not tag.find_parent(["main", "article"]):
        return True
    if str(tag.get("role", "")).lower() in _BOILER_ROLES:
        return True
    names = " ".join([*_attr_list(tag, "class"), *_attr_list(tag, "id")]).lower()
    return bool(_BOILER_WORDS & set(re.split(r"[-_\s]+", names)))


def _n_words(tag: Tag) -> int:
    return len(tag.get_text(" ").split())


def _attr_list(tag: Tag, name: str) -> list[str]:
    value = tag.get(name)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _main_content(soup: BeautifulSoup) -> Tag:
    body = soup.body or soup
    for name in ("main", "article"):
        found = soup.find_all(name) or (soup.find_all(role="main") if name == "main" else [])
        if len(found) == 1 and _n_words(found[0]) >= 0.5 * _n_words(body):
            return found[0]
    return body


def _collapse_whitespace(root: Tag) -> None:
    for node in root.find_all(string=True):
        if type(node) is NavigableString and not node.find_parent("pre"):
            node.replace_with(NavigableString(re.sub(r"\s+", " ", str(node))))
    for tag in root.find_all("br"):
        tag.replace_with("\n")


def _render_tables(root: Tag) -> None:
    """Each row -> one line ``cell | cell``; inner tables first so cells are plain text."""
    for row in reversed(root.find_all("tr")):
        cells = [" ".join(c.get_text(" ").split()) for c in row.find_all(_CELLS, recursive=False)]
        row.replace_with(f"{' | '.join(cells)}\n" if any(cells) else "")


def _render_footnote_marks(root: Tag) -> None:
    """A footnote reference -> ``[n]``: a linked superscript (``<sup><a href="#fn1">1</a></sup>``)
    or an in-page link whose text is a short number or mark (``<a href="#fn1">1</a>``)."""
    for link in root.find_all("a"):
        marker = " ".join(link.get_text(" ").split()).strip("[]")
        linked_sup = bool(link.find_parent("sup") or link.find("sup"))
        in_page = str(link.get("href", "")).startswith("#") and bool(_NOTE_MARK.fullmatch(marker))
        if 0 < len(marker) <= 4 and (linked_sup or in_page):
            link.replace_with(f"[{marker}]")


def _render_lists(root: Tag) -> None:
    """Each list -> its lines, innermost first; a nested list is indented under its item."""
    for lst in reversed(root.find_all(["ol", "ul"])):
        depth = len(lst.find_parents(["ol", "ul"]))
        sep = "\n" if depth else "\n\n"
        lst.replace_with(f"{sep}{_list_lines(lst, depth)}{sep}")
    for tag in root.find_all(["dt", "dd"]):
        tag.insert_before("\n")
        tag.insert_after("\n")


def _list_lines(lst: Tag, depth: int) -> str:
    lines: list[str] = []
    pad = _INDENT * depth
    number = _int(lst.get("start"), 1)
    for item in lst.find_all("li", recursive=False):
        number = _int(item.get("value"), number)
        marker = f"{number}." if lst.name == "ol" else "-"
        number += 1
        for block in item.find_all(BLOCK_TAGS):
            block.insert_before("\n")
            block.insert_after("\n")
        parts = [p.strip() for p in item.get_text().split("\n") if p.strip()]
        if parts:
            lines.append(f"{pad}{marker} {parts[0]}")
            lines.extend(p if p.startswith(_INDENT) else f"{pad}{_INDENT}{p}" for p in parts[1:])
    return "\n".join(lines)


def _render_blocks(root: Tag) -> None:
    for tag in root.find_all(BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default
