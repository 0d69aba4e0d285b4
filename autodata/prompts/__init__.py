"""Versioned prompt templates (``*.md`` beside this file, ``$name`` placeholders).

Every template's text is hashed into ``prompt_hash`` so rows say which prompts made them.
Untrusted text (sources, model outputs) is fenced so it cannot close its delimiting tag.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from string import Template

_TAG = re.compile(r"<\s*/?\s*(source|context|question|answer|item)\s*>", re.IGNORECASE)


@cache
def template(name: str) -> Template:
    """The template ``<name>.md``."""
    text = resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    return Template(text)


def render(name: str, **values: str) -> str:
    """Fill template ``name``; every placeholder must be given (a missing one is a bug)."""
    return template(name).substitute(**values).strip()


def fence(text: str) -> str:
    """Neutralise delimiter tags inside untrusted text so it stays data."""
    return _TAG.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›"), text)


def prompt_hash(*names: str) -> str:
    """Short hash over the named templates' text (all templates when none are named)."""
    chosen = names or tuple(
        sorted(
            p.name[:-3] for p in resources.files(__package__).iterdir() if p.name.endswith(".md")
        )
    )
    digest = hashlib.sha256()
    for name in chosen:
        digest.update(name.encode() + b"\0" + template(name).template.encode() + b"\0")
    return digest.hexdigest()[:12]
