"""Promotion: a variant becomes the recipe the pipeline runs.

:func:`promoted_params` rewrites the text of ``params.yaml`` so that it runs a variant's surface:
``prompts.<name>`` holds each template that differs from the packaged file (as a YAML block;
the others null), ``models.challenger`` the variant's sampling settings. Everything else — every
comment included — is left as it was (ruamel.yaml's round trip, which DVC already depends on).
``dvc repro`` then reruns ``generate`` (its params include ``prompts.*`` and
``models.challenger``) and regenerates the dataset with it; the rows carry the new recipe hash.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import LiteralScalarString

from autodata import prompts
from autodata.settings import Models
from tasks.optimize_surface import SAMPLING_TARGETS, TEXT_TARGETS


def _yaml() -> YAML:
    yaml = YAML()  # round trip: comments, order and quoting kept
    yaml.width = 100
    yaml.preserve_quotes = True
    yaml.representer.add_representer(type(None), _null)
    return yaml


def _null(representer: Any, _: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def promoted_params(text: str, surface: Mapping[str, Any]) -> str:
    """``params.yaml``'s ``text`` with ``surface`` as its prompts and challenger sampling."""
    yaml = _yaml()
    data = yaml.load(text) or CommentedMap()
    section = data.setdefault("prompts", CommentedMap())
    for name in TEXT_TARGETS:
        value = surface[name]
        section[name] = _block(value) if value != prompts.packaged_text(name) else None
    challenger = data.setdefault("models", CommentedMap()).setdefault("challenger", CommentedMap())
    default = Models().challenger
    for key in (k.split(".", 1)[1] for k in SAMPLING_TARGETS):  # a default stays unwritten
        if key in challenger or surface[f"challenger.{key}"] != getattr(default, key):
            challenger[key] = surface[f"challenger.{key}"]
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _block(value: str) -> str:
    """A literal block where it reads back exactly (no tabs or trailing spaces), else a string."""
    plain = all(line == line.rstrip() for line in value.splitlines()) and "\t" not in value
    return LiteralScalarString(value) if plain else value
