"""The recipe registry: every recipe that produced data, by ``recipe_hash``.

Rows carry only a 12-character ``recipe_hash`` (``Settings.recipe_hash``); the registry maps it
back to the recipe itself, so lineage can say *which settings* made a row. One JSON object per
line in ``Paths.recipe_registry``: ``{"recipe_hash", "recipe", "first_seen", "git_rev"}``;
a hash is written once (the first time it is seen), never rewritten.

The ``generate`` stage leaves a snapshot of its recipe in ``Paths.recipe_snapshot``; the
``accept`` stage records that one (the recipe the rows' ``recipe_hash`` names) and the current
one (whose gate made the decisions).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autodata.io import atomic_path, write_json
from autodata.settings import Settings


def hash_recipe(recipe: dict[str, Any]) -> str:
    """The hash :meth:`Settings.recipe_hash` gives for ``recipe`` (a test keeps them equal)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def parse_registry(text: str) -> dict[str, dict[str, Any]]:
    """Registry entries by ``recipe_hash`` from the file's text."""
    entries = (json.loads(line) for line in text.splitlines() if line.strip())
    return {entry["recipe_hash"]: entry for entry in entries}


def read_registry(path: Path) -> dict[str, dict[str, Any]]:
    """Registry entries by ``recipe_hash`` (empty if the file does not exist yet)."""
    return parse_registry(path.read_text()) if path.exists() else {}


def record(path: Path, recipe: dict[str, Any], git_rev: str, now: datetime | None = None) -> str:
    """Add ``recipe`` to the registry at ``path`` unless its hash is there; return the hash."""
    digest = hash_recipe(recipe)
    existing = read_registry(path)
    if digest in existing:
        return digest
    entry = {
        "recipe_hash": digest,
        "recipe": recipe,
        "first_seen": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "git_rev": git_rev,
    }
    lines = [json.dumps(e, sort_keys=True) for e in [*existing.values(), entry]]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return digest


def write_snapshot(settings: Settings) -> Path:
    """Leave the generate stage's recipe beside its tables (read back by :func:`record_recipe`)."""
    return write_json(settings.recipe(), settings.paths.recipe_snapshot)


def record_recipe(settings: Settings, path: Path, git_rev: str = "unknown") -> list[str]:
    """Record the generate stage's snapshot (if any) and the current recipe; return their hashes."""
    recipes = []
    snapshot = settings.paths.recipe_snapshot
    if snapshot.exists():
        recipes.append(json.loads(snapshot.read_text()))
    recipes.append(settings.recipe())
    return list(dict.fromkeys(record(path, recipe, git_rev) for recipe in recipes))
