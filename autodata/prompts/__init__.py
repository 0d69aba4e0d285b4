"""Versioned prompt templates (``*.md`` beside this file, ``$name`` placeholders).

Every template belongs to the role that renders it (:data:`ROLE_TEMPLATES`), and each role's
templates are hashed apart (:func:`role_hashes`), so a row names the prompts of the role that
wrote it and an edit to one role's prompt changes only that role's hash. A recipe may replace
the challenger-side templates (``settings.prompts``): :func:`render_with`.
Untrusted text (sources, model outputs) is fenced so it cannot close its delimiting tag.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from string import Template

SOLVER = ("solver_system", "solver_user", "solver_source", "solver_final_answer")
ROLE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "challenger": ("challenger_system", "challenger_example_user", "challenger_example_assistant",
                   "challenger_user", "feedback", "challenger_verifiable"),
    "verifier": ("verifier_system", "verifier_user"),
    "weak": SOLVER,  # both solvers render the same templates (a privileged one adds the source)
    "strong": SOLVER,
    "judge": ("judge_system", "judge_user", "judge_rubric_system", "judge_rubric_user", "judge_reference"),
}  # fmt: skip
_TAG = re.compile(r"<\s*/?\s*(source|context|question|answer|item|reference)\s*>", re.IGNORECASE)


def packaged_text(name: str) -> str:
    """The text of ``<name>.md`` as it is on disk now (uncached)."""
    return resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")


@cache
def template(name: str) -> Template:
    """The template ``<name>.md``."""
    return Template(packaged_text(name))


def render(name: str, **values: str) -> str:
    """Fill template ``name``; every placeholder must be given (a missing one is a bug)."""
    return template(name).substitute(**values).strip()


def render_with(overrides: Mapping[str, str], name: str, **values: str) -> str:
    """:func:`render`, with the recipe's replacement text for ``name`` if ``overrides`` has one."""
    text = overrides.get(name)
    return (template(name) if text is None else Template(text)).substitute(**values).strip()


def fence(text: str) -> str:
    """Neutralise delimiter tags inside untrusted text so it stays data."""
    return _TAG.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›"), text)


def prompt_hash(*names: str, overrides: Mapping[str, str] | None = None) -> str:
    """Short hash over the named templates' text (all templates when none are named), each
    replaced by ``overrides[name]`` where given."""
    chosen = names or tuple(
        sorted(
            p.name[:-3] for p in resources.files(__package__).iterdir() if p.name.endswith(".md")
        )
    )
    digest = hashlib.sha256()
    for name in chosen:
        text = (overrides or {}).get(name, template(name).template)
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:12]


def role_hashes(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each role's :func:`prompt_hash` over the templates it renders (:data:`ROLE_TEMPLATES`),
    with the recipe's replacement texts ``overrides`` where given."""
    return {
        role: prompt_hash(*names, overrides=overrides) for role, names in ROLE_TEMPLATES.items()
    }
