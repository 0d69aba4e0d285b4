"""LaTeX -> ``(title, text)`` with pylatexenc (MIT): the document body as a person reads it.

Only the body is read (between ``\\begin{document}`` and ``\\end{document}`` when present);
``\\title{…}`` gives the title and ``\\maketitle`` prints nothing (pylatexenc would print today's
date, and ids are content hashes). Sectioning commands become heading paragraphs; ``itemize`` and
``enumerate`` items one per line as ``-``/``1.``; ``tabular`` rows one per line with cells joined
by `` | ``; math stays as written (``$x^2$``); ``\\cite{k}`` reads ``[k]``, ``\\ref{k}`` reads ``k``;
comments and the preamble are dropped. Macros pylatexenc does not know are read as their
arguments' text.
"""

from __future__ import annotations

from collections.abc import Callable

from pylatexenc import latexwalker as lw
from pylatexenc.latex2text import (
    EnvironmentTextSpec,
    LatexNodes2Text,
    MacroTextSpec,
    get_default_latex_context_db,
)

_SECTIONS = ("part", "chapter", "section", "subsection", "subsubsection", "paragraph")
_Render = Callable[[lw.LatexNode, LatexNodes2Text], str]


def tex_to_text(source: str) -> tuple[str, str]:
    """``(title, text)`` of a LaTeX source; title is "" without ``\\title``. Never raises for
    malformed LaTeX (pylatexenc parses tolerantly)."""
    nodes, _, _ = lw.LatexWalker(source, tolerant_parsing=True).get_latex_nodes()
    converter = _converter()
    title_node = _find_macro(nodes, "title")
    title = ""
    if title_node is not None and title_node.nodeargd and title_node.nodeargd.argnlist:
        title = " ".join(converter.nodelist_to_text([title_node.nodeargd.argnlist[-1]]).split())
    document = _find_environment(nodes, "document")
    body = document.nodelist if document is not None else nodes
    return title, converter.nodelist_to_text(body)


def _converter() -> LatexNodes2Text:
    db = get_default_latex_context_db()  # a fresh db on each call
    macros = [
        MacroTextSpec("maketitle", simplify_repl=""),
        MacroTextSpec("cite", simplify_repl="[%(4)s]"),
        MacroTextSpec("ref", simplify_repl="%(1)s"),
        MacroTextSpec("eqref", simplify_repl="(%(1)s)"),
        *(MacroTextSpec(name, simplify_repl="\n\n%(3)s\n\n") for name in _SECTIONS),
    ]
    environments = [
        EnvironmentTextSpec("itemize", simplify_repl=_items(numbered=False)),
        EnvironmentTextSpec("enumerate", simplify_repl=_items(numbered=True)),
        EnvironmentTextSpec("tabular", simplify_repl=_tabular),
    ]
    db.add_context_category("autodata", macros=macros, environments=environments, prepend=True)
    return LatexNodes2Text(latex_context=db, math_mode="verbatim")


def _items(*, numbered: bool) -> _Render:
    def render(node: lw.LatexNode, l2tobj: LatexNodes2Text) -> str:
        items: list[list[lw.LatexNode]] = []
        for child in node.nodelist:
            if child.isNodeType(lw.LatexMacroNode) and child.macroname == "item":
                items.append([])
            elif items:
                items[-1].append(child)
        lines = [" ".join(l2tobj.nodelist_to_text(item).split()) for item in items]
        marks = [f"{i}." if numbered else "-" for i in range(1, len(lines) + 1)]
        return (
            "\n\n" + "\n".join(f"{m} {line}" for m, line in zip(marks, lines, strict=True)) + "\n\n"
        )

    return render


def _tabular(node: lw.LatexNode, l2tobj: LatexNodes2Text) -> str:
    rows: list[list[list[lw.LatexNode]]] = [[[]]]
    for child in node.nodelist:
        if child.isNodeType(lw.LatexMacroNode) and child.macroname == "\\":
            rows.append([[]])
        elif child.isNodeType(lw.LatexSpecialsNode) and child.specials_chars == "&":
            rows[-1].append([])
        else:
            rows[-1][-1].append(child)
    lines = []
    for row in rows:
        cells = [" ".join(l2tobj.nodelist_to_text(cell).split()) for cell in row]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n\n" + "\n".join(lines) + "\n\n"


def _find_macro(nodes: list[lw.LatexNode], name: str) -> lw.LatexMacroNode | None:
    for node in nodes:
        if node.isNodeType(lw.LatexMacroNode) and node.macroname == name:
            return node
    return None


def _find_environment(nodes: list[lw.LatexNode], name: str) -> lw.LatexEnvironmentNode | None:
    for node in nodes:
        if node.isNodeType(lw.LatexEnvironmentNode) and node.environmentname == name:
            return node
    return None
