"""What meta-optimization may change — the challenger side — and what it may not: the measurement.

Source: Meta FAIR's Autodata write-up. Its meta-optimizer edited the data scientist's harness and
kept a variant only when it generated more items that separate the weak and strong solvers; left
free, it once rewrote the weak solver's prompt to make the weak solver weaker. So here the
solvers' and the judge's prompts, the gate, the controls and the models are the *measurement*:
hashed once at the start (:func:`measurement_hash`) and checked before every evaluation, and an
edit naming them is refused.

A *surface* is a flat ``dict``: each template of :data:`TEXT_TARGETS` → its text, and each key of
:data:`SAMPLING_TARGETS` (``challenger.temperature`` …) → its number. An *edit* is what the editor
proposes (``{"target", "action": append|replace|set, "old", "new"}``); :func:`apply_edits` returns
the child surface or a :class:`Rejection` naming its kind and reason. Nothing here calls a model.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from string import Template
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, ValidationError

from autodata import prompts
from autodata.settings import Optimize, Prompts, RoleModel, Settings
from tasks.challenge import ChallengeOut

TEXT_TARGETS = ("challenger_system", "challenger_user", "challenger_example_user",
                "challenger_example_assistant", "feedback", "verifier_system", "verifier_user")  # fmt: skip
SAMPLING_TARGETS = ("challenger.temperature", "challenger.top_p", "challenger.max_tokens")
TARGETS = (*TEXT_TARGETS, *SAMPLING_TARGETS)
MEASUREMENT_TEMPLATES = ("solver_system", "solver_user", "solver_source", "judge_system", "judge_user",
                         "judge_rubric_system", "judge_rubric_user", "judge_reference")  # fmt: skip
_MEASURED_PREFIXES = ("gate", "rollouts", "loop", "weak", "strong", "judge", "controls")
_MODEL_KEYS = ("model", "backend", "base_url")
Surface = dict[str, Any]
RejectionKind = Literal["forbidden", "template", "size", "invalid", "no_change"]


class ProposedEdit(BaseModel):
    """One edit as the editor writes it (bounded, so guided decoding terminates)."""

    target: str = Field(min_length=1, max_length=80)
    action: Literal["append", "replace", "set"]
    old: str = Field("", max_length=1000)
    new: str = Field(max_length=4000)


class Rejection(NamedTuple):
    """Why a proposed variant was refused before any evaluation."""

    kind: RejectionKind
    reason: str


def surface_of(settings: Settings) -> Surface:
    """The editable surface ``settings`` runs: its replacement templates, else the packaged ones."""
    texts = settings.prompts.overrides()
    spec = settings.models.challenger
    return {name: texts.get(name, prompts.packaged_text(name)) for name in TEXT_TARGETS} | {
        key: getattr(spec, key.split(".", 1)[1]) for key in SAMPLING_TARGETS
    }


def with_surface(settings: Settings, surface: Mapping[str, Any]) -> Settings:
    """``settings`` running ``surface``: texts equal to the packaged file stay null (so the seed
    recipe keeps its hash), sampling goes to ``models.challenger``."""
    texts = {n: surface[n] for n in TEXT_TARGETS if surface[n] != prompts.packaged_text(n)}
    sampling = {key.split(".", 1)[1]: surface[key] for key in SAMPLING_TARGETS}
    challenger = settings.models.challenger.model_copy(update=sampling)
    models = settings.models.model_copy(update={"challenger": challenger})
    return settings.model_copy(update={"prompts": Prompts(**texts), "models": models})


def variant_id(settings: Settings, surface: Mapping[str, Any]) -> str:
    """A variant's id: the recipe hash of ``settings`` running it (the recipe version)."""
    return with_surface(settings, surface).recipe_hash()


def classify_target(raw: str) -> tuple[str, Rejection | None]:
    """The canonical target name, and a rejection if it is not on the surface.

    Accepts the spellings an editor may use: ``autodata/prompts/x.md``, ``prompts.x``,
    ``models.challenger.temperature``. Measurement names are ``forbidden``; others ``invalid``.
    """
    name = raw.strip().lower().removeprefix("autodata/prompts/").removesuffix(".md")
    name = name.removeprefix("prompts.").removeprefix("models.")
    if name in TARGETS:
        return name, None
    head, _, key = name.partition(".")
    measured = (name in MEASUREMENT_TEMPLATES or head in _MEASURED_PREFIXES
                or (head in ("challenger", "verifier") and key in _MODEL_KEYS) or (head == "verifier" and bool(key)))  # fmt: skip
    if measured:
        why = f"{raw.strip()} is part of the measurement (solver and judge prompts, gate, controls, models are immutable)"
        return name, Rejection("forbidden", why)
    return name, Rejection(
        "invalid", f"{raw.strip()} is not on the editable surface ({', '.join(TARGETS)})"
    )


def apply_edits(
    parent: Mapping[str, Any], edits: Sequence[ProposedEdit], limits: Optimize
) -> Surface | Rejection:
    """The child surface, or the first reason to refuse the whole proposal."""
    if not edits:
        return Rejection("no_change", "the editor proposed no edit")
    if len(edits) > limits.max_edits:
        return Rejection(
            "size", f"{len(edits)} edits, more than optimize.max_edits={limits.max_edits}"
        )
    child = dict(parent)
    for edit in edits:
        target, rejection = classify_target(edit.target)
        rejection = rejection or _apply_one(child, target, edit, limits)
        if rejection is not None:
            return rejection
    if child == dict(parent):
        return Rejection("no_change", "the edits leave the variant as it was")
    return child


def _apply_one(
    surface: Surface, target: str, edit: ProposedEdit, limits: Optimize
) -> Rejection | None:
    if len(edit.new) > limits.max_edit_chars:
        return Rejection("size", f"{target}: the edit writes {len(edit.new)} characters, more than optimize.max_edit_chars={limits.max_edit_chars}")  # fmt: skip
    if target in SAMPLING_TARGETS:
        return _set_number(surface, target, edit)
    text = surface[target]
    if edit.action == "append":
        text = text.rstrip("\n") + "\n" + edit.new.strip("\n")
    elif edit.action == "set":
        text = edit.new
    elif not edit.old or edit.old not in text:
        return Rejection("invalid", f"{target}: the text to replace is not in it")
    else:
        text = text.replace(edit.old, edit.new, 1)
    if len(text) > limits.max_text_chars:
        return Rejection("size", f"{target}: {len(text)} characters, more than optimize.max_text_chars={limits.max_text_chars}")  # fmt: skip
    surface[target] = text
    return template_problem(target, text)


def template_problem(target: str, text: str) -> Rejection | None:
    """Why ``text`` cannot stand in for template ``target``: a placeholder lost, added or broken,
    or a worked example that is not a valid item."""
    new, old = Template(text), prompts.template(target)
    if not new.is_valid():
        return Rejection("template", f"{target}: a stray $ (write $$ for a dollar sign)")
    lost = set(old.get_identifiers()) - set(new.get_identifiers())
    added = set(new.get_identifiers()) - set(old.get_identifiers())
    if lost or added:
        names = ", ".join(f"-${n}" for n in sorted(lost)) + ", ".join(
            f"+${n}" for n in sorted(added)
        )
        return Rejection("template", f"{target}: changes its template variables ({names})")
    if target == "challenger_example_assistant":
        try:
            ChallengeOut.model_validate_json(text)
        except ValidationError as exc:
            return Rejection(
                "invalid", f"{target}: no longer a valid item ({exc.errors()[0]['msg']})"
            )
    return None


def _set_number(surface: Surface, target: str, edit: ProposedEdit) -> Rejection | None:
    key = target.split(".", 1)[1]
    if edit.action != "set":
        return Rejection("invalid", f"{target}: a number can only be set")
    try:
        value = RoleModel.model_validate({key: edit.new.strip()}).model_dump()[key]
    except ValidationError as exc:
        return Rejection(
            "invalid", f"{target}: {exc.errors()[0]['msg']} (got {edit.new.strip()[:40]!r})"
        )
    surface[target] = value
    return None


def diff(parent: Mapping[str, Any], child: Mapping[str, Any]) -> str:
    """A unified diff of every changed text, then ``key: old -> new`` for changed numbers."""
    out: list[str] = []
    for name in TEXT_TARGETS:
        if parent[name] != child[name]:
            lines = difflib.unified_diff(parent[name].splitlines(), child[name].splitlines(),
                                         f"a/{name}", f"b/{name}", lineterm="")  # fmt: skip
            out.extend(lines)
    out.extend(f"{k}: {parent[k]} -> {child[k]}" for k in SAMPLING_TARGETS if parent[k] != child[k])
    return "\n".join(out)


def measurement(settings: Settings, validation: Sequence[str]) -> dict[str, Any]:
    """What every evaluation must share: solver and judge prompts (read from disk now), gate,
    controls, rollouts, loop, every model (the challenger's sampling aside) and the validation
    sources. ``settings`` is an evaluation's settings (optimizer rounds already applied)."""
    recipe = settings.recipe()
    sampled = {key.split(".", 1)[1] for key in SAMPLING_TARGETS} | {"seed"}
    models = recipe["models"] | {
        "challenger": {k: v for k, v in recipe["models"]["challenger"].items() if k not in sampled}
    }
    return {
        "templates": {name: prompts.packaged_text(name) for name in MEASUREMENT_TEMPLATES},
        "gate": recipe["gate"],
        "rollouts": recipe["rollouts"],
        "loop": recipe["loop"],
        "models": models,
        "validation": sorted(validation),
    }


def measurement_hash(settings: Settings, validation: Sequence[str]) -> str:
    """Short hash of :func:`measurement`."""
    blob = json.dumps(measurement(settings, validation), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
