"""Text that came from a file, a file name, a server or a model, made safe to print on a terminal.

Such text may hold terminal control sequences — ``ESC [`` colours, cursor moves and screen clears,
``ESC ] 8`` hyperlinks, ``BEL`` — a carriage return that overwrites what was printed, directional
overrides that reorder it, or a newline that forges another line of a one-line report. The one
helper, :func:`printable`, shows each such character as a visible escape (``\\x1b``, ``\\n``,
``\\u202e``; a byte of a file name that is not UTF-8, decoded by Python as a lone surrogate, as
``\\xff``). Every console line the CLI prints goes through it (``cli_common.say`` and ``fail``,
``progress.Reporter``, ``summary``, ``lineage``, ``models check``, the skipped-file report), and
is printed with rich's markup off, so ``[link=…]`` in such text is shown as written, never
interpreted.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls but tab and newline, DEL and C1 controls; the Arabic letter mark, LRM/RLM, line and
# paragraph separators, embeddings, overrides and isolates (they reorder what follows); lone
# surrogates (a file name's bytes that were not UTF-8).
_CONTROLS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff"
)
_LINES = re.compile(f"[{_CONTROLS}]")
_ONE_LINE = re.compile(f"[\n{_CONTROLS}]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character shown as an escape (module doc); tabs are kept,
    and newlines too when ``lines`` (a multi-line excerpt, where a line is a line)."""
    return (_LINES if lines else _ONE_LINE).sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
