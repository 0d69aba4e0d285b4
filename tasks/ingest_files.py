"""Which files of the sources folder are read, and the name each has in the tables.

A source is trusted only inside its folder: a link (to a file or a directory) that resolves
outside ``paths.sources`` is not read but becomes a skipped row naming its target and the fix —
unless ``ingest.follow_links_outside`` allows it — so a link to a credentials file is never sent
to a model, and a link to ``/`` never walks the file system. Every real directory is walked once
(a link back to one already walked is not followed: no loops). Hidden entries (names starting
with ``.``) are never sources.

File names are bytes on POSIX: :func:`uri_of` keeps a name that is not UTF-8 losslessly, each
byte that is not UTF-8 written as ``\\xNN`` (``caf\\xe9.txt``), so one such name no longer
stops the ingest; a name with a newline or an escape code is stored as it is and escaped only
when printed (:func:`autodata.terminal.printable`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["Unread", "list_sources", "uri_of"]

Unread = tuple[str, str]  # (uri, reason): an entry that is not read, for a skipped row


def list_sources(source_dir: Path, follow_links_outside: bool) -> tuple[list[Path], list[Unread]]:
    """Every non-hidden entry below ``source_dir`` that is not a directory, sorted by uri; and
    each link that resolves outside it and each directory that cannot be listed, with the
    reason (module doc)."""
    home = os.path.realpath(source_dir)
    found: list[Path] = []
    skips: list[Unread] = []
    seen: set[str] = set()

    def unlisted(exc: OSError) -> None:
        where = uri_of(Path(exc.filename), source_dir) if exc.filename else "."
        skips.append((where, f"unreadable directory ({exc.strerror}); check its permissions"))

    for root, dirs, names in os.walk(source_dir, onerror=unlisted, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        kept = []
        for name in (n for n in dirs if not n.startswith(".")):
            skip = _outside(Path(root) / name, source_dir, home, follow_links_outside)
            skips.extend([skip] if skip else [])
            kept.extend([] if skip else [name])
        dirs[:] = kept
        for name in (n for n in names if not n.startswith(".")):
            skip = _outside(Path(root) / name, source_dir, home, follow_links_outside)
            skips.extend([skip] if skip else [])
            found.extend([] if skip else [Path(root) / name])
    return sorted(found, key=lambda p: uri_of(p, source_dir)), skips


def uri_of(path: Path, source_dir: Path) -> str:
    """``path`` relative to ``source_dir``, posix, as text: a byte that is not UTF-8 as ``\\xNN``."""
    return os.fsencode(path.relative_to(source_dir).as_posix()).decode("utf-8", "backslashreplace")


def _outside(path: Path, source_dir: Path, home: str, allowed: bool) -> Unread | None:
    """A skipped row for a link at ``path`` that resolves outside ``home``, else None."""
    if allowed or not path.is_symlink():
        return None
    target = os.path.realpath(path)
    if os.path.commonpath([home, target]) == home:
        return None
    what = "a directory" if os.path.isdir(target) else "a file"
    return (
        uri_of(path, source_dir),
        f"a link to {what} outside the sources folder ({target}): not read, a source is trusted "
        "only inside its folder; copy it in, or set ingest.follow_links_outside: true",
    )
