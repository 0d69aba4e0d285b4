"""Settings: the repo's params.yaml, one-line ConfigErrors, env overrides, secrets, recipe_hash."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest
from pydantic import SecretStr

from autodata.errors import ConfigError
from autodata.settings import ROLES, Settings, load_settings

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
SECRET = "sk-test-SECRET"


@pytest.fixture(autouse=True)
def _no_autodata_env(monkeypatch):
    """Tests see only the variables they set themselves."""
    for name in list(os.environ):
        if name.startswith("AUTODATA_"):
            monkeypatch.delenv(name)


def _load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_settings(path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "params.yaml") in message
    return message


def _with_role(settings: Settings, role: str, **update: object) -> Settings:
    spec = settings.models.role(role).model_copy(update=update)
    return settings.model_copy(update={"models": settings.models.model_copy(update={role: spec})})


def _with_gate(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"gate": settings.gate.model_copy(update=update)})


# -- defaults --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["params.yaml", "code"])
def test_defaults_match_the_design(source):
    s = load_settings(REPO_PARAMS) if source == "params.yaml" else Settings()
    g = s.gate
    assert (g.weak_mean_max, g.weak_max_max) == (0.65, 0.75)
    assert (g.strong_mean_min, g.strong_mean_max, g.min_gap) == (0.60, 0.95, 0.20)
    assert (s.rollouts.weak, s.rollouts.strong) == (3, 3)
    assert s.loop.max_rounds == 8
    assert s.models.strong.privileged and not s.models.weak.privileged


def test_the_repo_params_file_states_the_code_defaults():
    assert load_settings(REPO_PARAMS) == Settings()


def test_an_empty_file_gives_the_defaults(tmp_path):
    assert _load(tmp_path, "") == Settings()


# -- one-line errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("colour: blue\n", ["unknown key 'colour'"]),
        ("gate:\n  min_gapp: 0.3\n", ["unknown key 'gate.min_gapp'"]),
        ("models:\n  judge:\n    modle: x\n", ["unknown key 'models.judge.modle'"]),
        ("rollouts:\n  weak: many\n", ["rollouts.weak", "'many'", "AUTODATA_ROLLOUTS__WEAK"]),
        ("gate:\n  min_gap: 1.5\n", ["gate.min_gap", "1.5", "AUTODATA_GATE__MIN_GAP"]),
        (
            "gate:\n  strong_mean_min: 0.9\n  strong_mean_max: 0.9\n",
            ["gate", "strong_mean_min must be below strong_mean_max"],
        ),
        ("models:\n  judge:\n    backend: ollama\n", ["models.judge.backend", "'ollama'"]),
        ("models:\n  judge:\n    backend: openai\n", ["models.judge", "needs base_url"]),
        ("models: [judge]\n", ["models", "valid dictionary"]),
        ("gate: 0.5\n", ["gate", "valid dictionary"]),
    ],
    ids=[
        "unknown-top",
        "unknown-nested",
        "unknown-role-key",
        "wrong-type",
        "out-of-range",
        "min-not-below-max",
        "unknown-backend",
        "openai-without-url",
        "models-not-a-mapping",
        "section-not-a-mapping",
    ],
)
def test_a_bad_file_gives_one_line_naming_the_key(tmp_path, text, names):
    message = _error(tmp_path, text)
    for name in names:
        assert name in message
    assert "remove it" in message or "fix it in" in message


def test_an_api_key_in_the_file_points_to_the_env_variable(tmp_path):
    message = _error(tmp_path, f"models:\n  judge:\n    api_key: {SECRET}\n")
    assert "models.judge.api_key" in message
    assert "AUTODATA_MODELS__JUDGE__API_KEY" in message
    assert SECRET not in message


def test_invalid_yaml_gives_one_line_with_the_position(tmp_path):
    message = _error(tmp_path, "gate:\n  min_gap: [0.2\n")
    assert "not valid YAML" in message and "line 3" in message and "fix the syntax" in message


def test_a_non_mapping_top_level_is_rejected(tmp_path):
    assert "top level must be a mapping" in _error(tmp_path, "- gate\n- models\n")


def test_a_missing_file_says_how_to_provide_one(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(err.value)
    assert "--params" in str(err.value)


# -- environment -----------------------------------------------------------------------------


def test_env_overrides_win_over_the_file_key_by_key(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODATA_GATE__MIN_GAP", "0.3")
    s = _load(tmp_path, "gate:\n  min_gap: 0.25\n  weak_mean_max: 0.5\n")
    assert s.gate.min_gap == 0.3
    assert s.gate.weak_mean_max == 0.5  # the rest of the section still comes from the file


def test_a_bad_env_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODATA_GATE__MIN_GAP", "lots")
    message = _error(tmp_path, "")
    assert "AUTODATA_GATE__MIN_GAP" in message and "'lots'" in message


def test_the_api_key_comes_from_env_as_a_secret_that_never_shows(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODATA_MODELS__JUDGE__API_KEY", SECRET)
    s = _load(tmp_path, "models:\n  judge:\n    backend: openai\n    base_url: http://h/v1\n")
    assert isinstance(s.models.judge.api_key, SecretStr)
    assert s.models.judge.api_key.get_secret_value() == SECRET
    assert s.models.judge.base_url == "http://h/v1"
    for shown in (str(s), repr(s), str(s.recipe()), s.model_dump_json(), s.recipe_hash()):
        assert SECRET not in shown


def test_a_config_error_never_carries_the_api_key(tmp_path, monkeypatch):
    """The judge section fails validation while it holds the key read from the environment."""
    monkeypatch.setenv("AUTODATA_MODELS__JUDGE__API_KEY", SECRET)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "models:\n  judge:\n    backend: openai\n")
    assert "models.judge" in str(err.value)
    assert SECRET not in "".join(traceback.format_exception(err.value))


# -- recipe hash -----------------------------------------------------------------------------


def test_recipe_hash_is_stable():
    assert Settings().recipe_hash() == Settings().recipe_hash()
    assert len(Settings().recipe_hash()) == 12


@pytest.mark.parametrize(
    "change",
    [
        lambda s: _with_gate(s, min_gap=0.3),
        lambda s: _with_gate(s, strong_mean_max=0.9),
        lambda s: _with_role(s, "judge", temperature=0.5),
        lambda s: _with_role(s, "weak", model="other-model"),
        lambda s: s.model_copy(update={"rollouts": s.rollouts.model_copy(update={"weak": 4})}),
        lambda s: s.model_copy(update={"loop": s.loop.model_copy(update={"mode": "verifiable"})}),
    ],
    ids=["min_gap", "strong_mean_max", "temperature", "model", "rollouts", "loop-mode"],
)
def test_recipe_hash_changes_with_what_shapes_the_data(change):
    assert change(Settings()).recipe_hash() != Settings().recipe_hash()


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.model_copy(
            update={"paths": s.paths.model_copy(update={"cache": Path("/elsewhere")})}
        ),
        lambda s: _with_role(s, "judge", api_key=SecretStr(SECRET)),
        lambda s: _with_role(s, "judge", max_concurrency=64),
        lambda s: _with_role(s, "judge", timeout_s=5.0),
        lambda s: _with_role(s, "judge", max_retries=9),
        lambda s: _with_role(s, "judge", base_url="http://other:8000/v1"),
    ],
    ids=["paths", "api_key", "max_concurrency", "timeout_s", "max_retries", "base_url"],
)
def test_recipe_hash_ignores_where_and_how_models_are_reached(change):
    assert change(Settings()).recipe_hash() == Settings().recipe_hash()


def test_every_role_is_in_the_recipe():
    assert set(Settings().recipe()["models"]) == set(ROLES)
