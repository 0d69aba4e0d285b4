"""A recipe's replacement templates (``settings.prompts``) reach the Challenger and the verifier,
feedback included, and change the prompt hash; the packaged templates stay the default."""

from __future__ import annotations

from builders import round_row, rounds_frame

from autodata import prompts
from autodata.settings import Prompts, RoleModel, Settings
from tasks.challenge import (
    ChallengeOut,
    challenger_request,
    feedback_by_source,
    verifier_request,
)

SPEC = RoleModel(backend="openai", base_url="http://unused/v1", model="scripted")
SOURCE = {"source_id": "s", "domain": "legal", "text": "A buyer may terminate after notice."}
ITEM = ChallengeOut.model_validate_json(prompts.packaged_text("challenger_example_assistant"))


def test_replacement_texts_reach_the_challenger_messages() -> None:
    texts = {
        "challenger_system": "RULES: never leak.",
        "challenger_user": "D=$domain S=$source$feedback",
    }
    messages = dict(challenger_request(SOURCE, "", SPEC, 1, texts).messages[:1])
    user = challenger_request(SOURCE, "", SPEC, 1, texts).messages[-1][1]
    assert messages["system"] == "RULES: never leak."
    assert user == f"D=legal S={SOURCE['text']}"
    packaged = challenger_request(SOURCE, "", SPEC, 1).messages
    assert packaged[0][1] == prompts.render("challenger_system")


def test_replacement_texts_reach_the_verifier_and_the_feedback() -> None:
    request = verifier_request(ITEM, SPEC, {"verifier_system": "Be strict."})
    assert request.messages[0] == ("system", "Be strict.")
    history = rounds_frame([round_row("c1", "s", "too_easy", feedback="too easy: Q (weak 0.9)")])
    block = feedback_by_source(history, {"feedback": "EARLIER:\n$attempts"})["s"]
    assert block.strip() == "EARLIER:\n- too easy: Q (weak 0.9)"


def test_prompt_hash_covers_replacements_and_recipe_carries_them_only_when_set() -> None:
    assert prompts.prompt_hash(overrides={}) == prompts.prompt_hash()
    assert prompts.prompt_hash(overrides={"feedback": "x $attempts"}) != prompts.prompt_hash()
    plain = Settings()
    changed = Settings(prompts=Prompts(challenger_system="Write one hard item."))
    assert "prompts" not in plain.recipe()
    assert changed.recipe()["prompts"] == {"challenger_system": "Write one hard item."}
    assert changed.recipe_hash() != plain.recipe_hash()


def test_optimizer_roles_are_settings_but_not_part_of_the_recipe() -> None:
    settings = Settings()
    assert settings.models.role("analyzer").model == settings.models.role("editor").model
    assert {"analyzer", "editor"}.isdisjoint(settings.recipe()["models"])
