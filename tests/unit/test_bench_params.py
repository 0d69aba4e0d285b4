"""The settings files behind the real-model benchmark figures load, and name the embedded Qwen
models as benchmarks/README.md says they ran."""

from __future__ import annotations

from pathlib import Path

from autodata.settings import ROLES, load_settings

PARAMS = Path(__file__).resolve().parents[2] / "benchmarks" / "params"
BIG, SMALL = "embedded:qwen2.5-coder-1.5b-instruct", "embedded:qwen2.5-coder-0.5b-instruct"


def test_the_qwen_profile_loads_with_the_measured_roles() -> None:
    settings = load_settings(PARAMS / "qwen.yaml")
    models = {role: settings.models.role(role).model for role in ROLES}
    assert models == {role: SMALL if role == "weak" else BIG for role in ROLES}
    assert settings.models.strong.privileged and settings.models.judge.max_tokens == 512
    assert (settings.models.analyzer.model, settings.models.editor.model) == (BIG, BIG)
