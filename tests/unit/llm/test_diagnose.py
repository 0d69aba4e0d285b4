"""`autodata models check` names how each server really answers (reply_notes), end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autodata.cli import app
from autodata.llm.diagnose import reply_notes
from autodata.llm.reply import normalise
from autodata.testing.realistic import RealServer
from autodata.testing.scripted_server import ScriptedServer

PING = '{"ok": true, "word": "hello"}'


def _notes(message: dict[str, Any], finish: str = "stop") -> list[str]:
    raw = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    return reply_notes(raw, normalise(raw, json_expected=True), json_asked=True)


@pytest.mark.parametrize(
    ("message", "finish", "says"),
    [
        ({"content": "<think>hm</think>" + PING}, "stop", "<think> block in content"),
        ({"content": PING, "reasoning_content": "hm"}, "stop", "reasoning in 'reasoning_content'"),
        ({"content": "```json\n" + PING + "\n```"}, "stop", "ignores response_format"),
        ({"content": [{"type": "text", "text": PING}]}, "stop", "list of typed parts"),
        ({"content": PING[:10]}, "length", "truncated"),
    ],
    ids=["think", "reasoning-field", "fence", "list", "truncated"],
)
def test_each_reply_shape_is_named(message, finish, says):
    assert any(says in note for note in _notes(message, finish))


def test_a_plain_reply_has_no_notes():
    assert _notes({"content": PING}) == []


@pytest.mark.parametrize(
    ("mode", "says"), [("fence", "ignores response_format"), ("think", "thinking on")]
)
def test_models_check_shows_the_notes(tmp_path: Path, mode: str, says: str) -> None:
    with ScriptedServer(RealServer(lambda body: PING, mode)) as server:
        role = {"backend": "openai", "base_url": server.base_url, "model": "scripted"}
        roles = ("challenger", "verifier", "weak", "strong", "judge")
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump({"models": dict.fromkeys(roles, role)}))
        result = CliRunner().invoke(
            app, ["--params", str(params), "models", "check"], env={"COLUMNS": "400"}
        )
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and says in result.output
