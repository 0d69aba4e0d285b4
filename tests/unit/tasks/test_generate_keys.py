"""tasks/generate.py: what each round file is keyed on (named test_generate_keys.py because
tests/unit/flows/test_generate.py holds the flow's tests and pytest needs distinct basenames).

A change reaches exactly the steps whose content it changes, and every step after them (keys
chain); a change that alters no content reaches none."""

from __future__ import annotations

from string import Template
from typing import Any

import polars as pl
import pytest
from conftest import make_settings

from autodata import prompts
from autodata.settings import Gate, Loop, Paths, RoleModel, Rollouts, Settings
from tasks.generate import round_keys, work_key

STEPS = ("challenges", "weak_rollouts", "weak_judgments", "strong_rollouts", "strong_judgments", "rounds")  # fmt: skip
SOURCES = pl.DataFrame({"source_id": ["s1", "s2"], "domain": ["legal", "math"]})
BASE = make_settings(Paths().interim.parent, "http://127.0.0.1:9/v1")


def _role(settings: Settings, role: str, **changes: Any) -> Settings:
    spec: RoleModel = settings.models.role(role).model_copy(update=changes)
    return settings.model_copy(update={"models": settings.models.model_copy(update={role: spec})})


BEFORE = round_keys(BASE, 1, SOURCES, "prev")


def changed(settings: Settings, *, round_no: int = 1, sources: pl.DataFrame = SOURCES) -> set[str]:
    """The steps whose key differs from BASE's round 1 (keys computed before any edit)."""
    after = round_keys(settings, round_no, sources, "prev")
    return {step for step in STEPS if BEFORE[step] != after[step]}


FROM = {step: set(STEPS[i:]) for i, step in enumerate(STEPS)}  # a step and every step after it


@pytest.mark.parametrize(
    ("variant", "reaches"),
    [
        (_role(BASE, "challenger", temperature=0.9), FROM["challenges"]),
        (_role(BASE, "verifier", model="other"), FROM["challenges"]),
        (_role(BASE, "weak", max_tokens=64), FROM["weak_rollouts"]),
        (BASE.model_copy(update={"rollouts": Rollouts(weak=5)}), FROM["weak_rollouts"]),
        (_role(BASE, "judge", model="acme/judge-70b"), FROM["weak_judgments"]),
        (BASE.model_copy(update={"loop": Loop(non_answer="No idea.")}), FROM["weak_judgments"]),
        (
            BASE.model_copy(update={"loop": Loop(judge_protocol="per_criterion")}),
            FROM["weak_judgments"],
        ),
        (BASE.model_copy(update={"loop": Loop(judge_reference=True)}), FROM["weak_judgments"]),
        (BASE.model_copy(update={"gate": Gate(min_gap=0.3)}), FROM["strong_rollouts"]),
        (_role(BASE, "strong", seed=7), FROM["strong_rollouts"]),
        # where a model is reached, and how many rounds may run, change no file's content
        (_role(BASE, "judge", base_url="http://elsewhere:8000/v1", max_concurrency=64), set()),
        (BASE.model_copy(update={"loop": Loop(max_rounds=3, max_infra_retries=0)}), set()),
    ],
)
def test_a_setting_reaches_its_step_and_the_steps_after_it(
    variant: Settings, reaches: set[str]
) -> None:
    assert changed(variant) == reaches


@pytest.mark.parametrize(
    ("template", "reaches"),
    [
        ("challenger_system", "challenges"),
        ("verifier_user", "challenges"),
        ("solver_user", "weak_rollouts"),
        ("judge_system", "weak_judgments"),
        ("judge_rubric_user", "weak_judgments"),
    ],
)
def test_a_prompt_edit_reaches_the_steps_of_its_role(
    monkeypatch: pytest.MonkeyPatch, template: str, reaches: str
) -> None:
    original = prompts.template
    monkeypatch.setattr(
        prompts,
        "template",
        lambda name: Template(original(name).template + ("\nEdited." if name == template else "")),
    )
    assert changed(BASE) == FROM[reaches]


def test_a_recipe_prompt_replacement_reaches_the_challenger_side() -> None:
    text = prompts.template("feedback").template + "\nTry a new angle."
    replaced = BASE.model_copy(update={"prompts": BASE.prompts.model_copy(update={"feedback": text})})  # fmt: skip
    assert changed(replaced) == FROM["challenges"]


def test_keys_chain_through_rounds_and_the_open_sources() -> None:
    one = round_keys(BASE, 2, SOURCES, "round-1-a")
    assert round_keys(BASE, 2, SOURCES, "round-1-b")["challenges"] != one["challenges"]
    assert changed(BASE, round_no=2) == set(STEPS)  # the round is part of the key
    fewer = SOURCES.head(1)
    assert changed(BASE, sources=fewer) == set(STEPS)
    relabelled = SOURCES.with_columns(domain=pl.lit("physics"))  # the Challenger reads it
    assert changed(BASE, sources=relabelled) == set(STEPS)


def test_the_work_folder_is_keyed_on_the_source_set_only() -> None:
    assert work_key(SOURCES) == work_key(SOURCES.reverse())
    assert work_key(SOURCES) != work_key(SOURCES.head(1))
    gate = BASE.model_copy(update={"gate": Gate(min_gap=0.3)})
    paths = gate.paths.round_files(work_key(SOURCES), 1, round_keys(gate, 1, SOURCES, ""))
    base = BASE.paths.round_files(work_key(SOURCES), 1, round_keys(BASE, 1, SOURCES, ""))
    assert paths.challenges == base.challenges and paths.rounds != base.rounds
    assert (
        paths.challenges.name == "challenges.parquet"
    )  # the name is the step's; its folder the key
