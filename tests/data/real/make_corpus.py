"""Regenerate the two laid-out files of the corpus from the plain public-domain texts beside this
script (README.md says what each file is and where its text comes from).

    uv run --with reportlab==5.1.0 python tests/data/real/make_corpus.py

- ``corpus/marbury_slip_opinion.txt``: the Marbury v. Madison excerpt laid out the way
  ``pdftotext -layout`` renders a Supreme Court slip opinion: justified 66-column lines, long
  words hyphenated at line ends, a caption on page 1, alternating running heads with page
  numbers, footnotes below a rule at the foot of their page, form feeds between pages.
- ``corpus/declaration_of_independence.pdf``: the Declaration of Independence as a 4-page PDF
  (A5, Times) with a running head and a page number on every page; reportlab (BSD) is needed
  only here, not by autodata.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
WIDTH = 66
LINES_PER_PAGE = 24
FOOTNOTES = {
    "1": "U. S. Const., Art. VI, cl. 2.",
    "2": "U. S. Const., Art. III, § 2, cl. 1.",
    "3": "U. S. Const., Art. I, § 9, cl. 5.",
    "4": "U. S. Const., Art. III, § 3, cl. 1.",
}
CAPTION = """\
(Slip Opinion)                                     FEBRUARY TERM, 1803

              SUPREME COURT OF THE UNITED STATES
                       _________________

             WILLIAM MARBURY v. JAMES MADISON,
                      SECRETARY OF STATE
                       _________________

                     [February 24, 1803]

  CHIEF JUSTICE MARSHALL delivered the opinion of the Court.
"""


def justify(words: list[str], width: int) -> str:
    """The words spread over ``width`` columns, as pdftotext renders justified type."""
    if len(words) == 1:
        return words[0]
    gaps, extra = len(words) - 1, width - sum(map(len, words))
    spaces = [extra // gaps + (1 if i < extra % gaps else 0) for i in range(gaps)]
    return "".join(w + " " * s for w, s in zip(words, [*spaces, 0], strict=True))


def lay_out(paragraph: str, indent: str = "    ") -> list[str]:
    """Justified lines, the first indented; a long word that does not fit is hyphenated."""
    lines: list[list[str]] = []
    line: list[str] = []
    for word in paragraph.split():
        width = WIDTH - (len(indent) if not lines else 0)
        room = width - len(" ".join(line)) - (1 if line else 0)
        if len(word) <= room:
            line.append(word)
            continue
        if word.isalpha() and room >= 5 and len(word) - (room - 1) >= 3:
            line.append(word[: room - 1] + "-")
            word = word[room - 1 :]
        lines.append(line)
        line = [word]
    lines.append(line)
    last = len(lines) - 1
    return [
        (indent if i == 0 else "")
        + (justify(ws, WIDTH - (len(indent) if i == 0 else 0)) if i < last else " ".join(ws))
        for i, ws in enumerate(lines)
    ]


def slip_opinion(text: str) -> str:
    body: list[tuple[str, list[str]]] = []  # (line, footnote numbers on it)
    for paragraph in text.split("\n\n"):
        for line in lay_out(re.sub(r"\[(\d)\]", r"\1", paragraph.replace("\n", " "))):
            marks = [n for n in FOOTNOTES if re.search(rf"[,.;:\"”]{n}\b", line)]
            body.append(("  " + line.rstrip(), marks))
    pages, first = [], CAPTION.count("\n")
    start = 0
    while start < len(body):
        size = LINES_PER_PAGE - (first if not pages else 0)
        pages.append(body[start : start + size])
        start += size
    out = []
    for number, lines in enumerate(pages, start=1):
        head = (
            []
            if number == 1
            else [_running_head(number), "", "Opinion of the Court".center(WIDTH + 2), ""]
        )
        notes = [f"  {n} {FOOTNOTES[n]}" for _, marks in lines for n in marks]
        foot = ["  ______________________________", "", *notes] if notes else []
        top = [*CAPTION.rstrip("\n").split("\n"), ""] if number == 1 else head
        out.append("\n".join([*top, *(line for line, _ in lines), "", *foot]) + "\n")
    return "\f".join(out)


def _running_head(number: int) -> str:
    if number % 2 == 0:
        return f"{number:<4}{'MARBURY v. MADISON':^{WIDTH - 4}}"
    return f"{'Cite as: 5 U. S. 137 (1803)':<{WIDTH - 2}}{number:>4}"


def declaration_pdf(text: str, target: Path) -> None:
    from reportlab.lib.pagesizes import A5
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    style = ParagraphStyle("body", fontName="Times-Roman", fontSize=10.5, leading=13, spaceAfter=6)
    head = ParagraphStyle("head", parent=style, fontName="Times-Bold", fontSize=13, leading=16)

    def furniture(canvas, doc):  # type: ignore[no-untyped-def]
        canvas.saveState()
        canvas.setFont("Times-Italic", 8)
        canvas.drawString(36, A5[1] - 28, "The Declaration of Independence: A Transcription")
        canvas.drawCentredString(A5[0] / 2, 20, f"Page {doc.page}")
        canvas.restoreState()

    paragraphs = text.strip().split("\n\n")
    story = [Paragraph(paragraphs[0], head), *(Paragraph(p, style) for p in paragraphs[1:])]
    doc = SimpleDocTemplate(str(target), pagesize=A5, title="The Declaration of Independence",
                            leftMargin=36, rightMargin=36, topMargin=44, bottomMargin=40,
                            invariant=1)  # fmt: skip
    doc.build(story, onFirstPage=furniture, onLaterPages=furniture)


if __name__ == "__main__":
    marbury = (HERE / "marbury_excerpt.txt").read_text()
    (HERE / "corpus" / "marbury_slip_opinion.txt").write_text(slip_opinion(marbury))
    declaration = (HERE / "declaration_of_independence.txt").read_text()
    declaration_pdf(declaration, HERE / "corpus" / "declaration_of_independence.pdf")
