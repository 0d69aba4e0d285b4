"""The editable surface and the measurement: what an edit may touch, why it is refused, and that
the measurement hash moves with the measurement only."""

from __future__ import annotations

import pytest

from autodata import prompts
from autodata.settings import Gate, Optimize, Settings
from tasks.optimize_surface import (
    TARGETS,
    ProposedEdit,
    Rejection,
    apply_edits,
    classify_target,
    diff,
    measurement_hash,
    surface_of,
    variant_id,
    with_surface,
)

LIMITS = Optimize()
SEED = surface_of(Settings())
RULE = "Never state the answer in the context."


def edit(target: str, new: str, action: str = "append", old: str = "") -> ProposedEdit:
    return ProposedEdit(target=target, action=action, old=old, new=new)  # type: ignore[arg-type]


def refused(*edits: ProposedEdit, limits: Optimize = LIMITS) -> Rejection:
    result = apply_edits(SEED, edits, limits)
    assert isinstance(result, Rejection), result
    return result


def test_the_seed_surface_is_the_packaged_prompts_and_keeps_the_recipe_hash() -> None:
    assert set(SEED) == set(TARGETS)
    assert SEED["challenger_system"] == prompts.packaged_text("challenger_system")
    assert SEED["challenger.temperature"] == Settings().models.challenger.temperature
    assert variant_id(Settings(), SEED) == Settings().recipe_hash()
    assert with_surface(Settings(), SEED).prompts.overrides() == {}


def test_an_appended_rule_is_a_new_variant_carried_by_the_recipe() -> None:
    child = apply_edits(SEED, [edit("challenger_system", RULE)], LIMITS)
    assert not isinstance(child, Rejection)
    assert child["challenger_system"].endswith("\n" + RULE)
    settings = with_surface(Settings(), child)
    assert settings.prompts.overrides() == {"challenger_system": child["challenger_system"]}
    assert variant_id(Settings(), child) not in (
        Settings().recipe_hash(),
        variant_id(Settings(), SEED),
    )
    assert f"+{RULE}" in diff(SEED, child)


def test_replace_set_and_sampling_edits_apply() -> None:
    child = apply_edits(SEED, [
        edit("prompts.feedback", "Try a new angle:", "replace", old="Write an entirely new question"),
        edit("models.challenger.temperature", "0.9", "set"),
        edit("autodata/prompts/verifier_system.md", "Check the item.\n$$ costs are data.", "set"),
    ], LIMITS)  # fmt: skip
    assert not isinstance(child, Rejection)
    assert child["feedback"].count("Try a new angle:") == 1
    assert child["challenger.temperature"] == 0.9
    assert with_surface(Settings(), child).models.challenger.temperature == 0.9
    assert "challenger.temperature: 0.3 -> 0.9" in diff(SEED, child)


@pytest.mark.parametrize(
    "target",
    ["solver_system", "autodata/prompts/judge_user.md", "gate.min_gap", "models.weak.temperature",
     "weak.max_tokens", "judge.model", "challenger.model", "verifier.temperature", "rollouts.weak",
     "loop.non_answer", "strong.privileged"],
)  # fmt: skip
def test_an_edit_of_the_measurement_is_forbidden(target: str) -> None:
    rejection = refused(edit(target, "0.9", "set"))
    assert rejection.kind == "forbidden"
    assert "measurement" in rejection.reason
    assert classify_target(target)[1] == rejection


def test_a_forbidden_edit_refuses_the_whole_proposal() -> None:
    assert refused(edit("challenger_system", RULE), edit("solver_system", "Be brief.", "set")).kind == "forbidden"  # fmt: skip


@pytest.mark.parametrize(
    ("proposal", "kind", "says"),
    [
        ([edit("analyzer_system", "x")], "invalid", "not on the editable surface"),
        ([edit("challenger_user", "the source", "replace", old="$source")], "template", "-$source"),
        ([edit("feedback", "Earlier: $attempts and $extra", "set")], "template", "+$extra"),
        ([edit("challenger_system", "costs $5")], "template", "stray $"),
        ([edit("challenger_system", "x" * 1501)], "size", "max_edit_chars=1500"),
        ([edit("challenger_system", "y" * 1400)] * 4, "size", "max_text_chars=6000"),
        ([edit("challenger_system", f"rule {i}") for i in range(5)], "size", "max_edits=4"),
        ([edit("challenger_system", "z", "replace", old="no such text")], "invalid", "not in it"),
        ([edit("challenger_example_assistant", "{not json", "set")], "invalid", "valid item"),
        ([edit("challenger.temperature", "3.5", "set")], "invalid", "less than or equal to 2"),
        ([edit("challenger.max_tokens", "many", "set")], "invalid", "many"),
        ([edit("challenger.top_p", "0.5")], "invalid", "only be set"),
        ([edit("challenger.temperature", "0.3", "set")], "no_change", "as it was"),
        ([], "no_change", "no edit"),
    ],
)
def test_refusals_name_their_kind_and_reason(proposal: list[ProposedEdit], kind: str, says: str) -> None:  # fmt: skip
    rejection = refused(*proposal)
    assert rejection.kind == kind
    assert says in rejection.reason


def test_measurement_hash_moves_with_the_measurement_only(monkeypatch: pytest.MonkeyPatch) -> None:
    base, ids = Settings(), ["a", "b"]
    before = measurement_hash(base, ids)
    child = apply_edits(SEED, [edit("challenger_system", RULE), edit("challenger.temperature", "1.1", "set")], LIMITS)  # fmt: skip
    assert not isinstance(child, Rejection)
    assert measurement_hash(with_surface(base, child), ids) == before
    seeded = base.models.challenger.model_copy(update={"seed": 7})
    assert measurement_hash(base.model_copy(update={"models": base.models.model_copy(update={"challenger": seeded})}), ids) == before  # fmt: skip
    assert measurement_hash(base, ["a", "c"]) != before
    assert measurement_hash(base.model_copy(update={"gate": Gate(min_gap=0.3)}), ids) != before
    judge = base.models.judge.model_copy(update={"model": "other"})
    assert measurement_hash(base.model_copy(update={"models": base.models.model_copy(update={"judge": judge})}), ids) != before  # fmt: skip
    original = prompts.packaged_text
    monkeypatch.setattr(prompts, "packaged_text", lambda n: original(n) + ("!" if n == "solver_system" else ""))  # fmt: skip
    assert measurement_hash(base, ids) != before
