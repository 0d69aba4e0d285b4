"""normalise(): every reply shape real servers send, turned into answer + reasoning + finish."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from autodata.llm.reply import (
    BadReply,
    InvalidOutput,
    normalise,
    parse_json,
    split_think,
    strip_fence,
)


def _body(message: dict[str, Any], finish: Any = "stop", **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": message, "finish_reason": finish}
    return {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 5}} | extra


def test_a_plain_reply_is_unchanged():
    reply = normalise(_body({"content": "Paris."}))
    (choice,) = reply.choices
    assert (choice.text, choice.reasoning, choice.finish_reason) == ("Paris.", "", "stop")
    assert (reply.tokens_in, reply.tokens_out) == (3, 5)


@pytest.mark.parametrize(
    ("content", "answer", "thought"),
    [
        ("<think>\nLet me check.\n</think>\n\nParis.", "Paris.", "Let me check."),
        ('  <think>a</think>{"x": 1}', '{"x": 1}', "a"),
        ("Let me check.\n</think>\n\nParis.", "Paris.", "Let me check."),  # opening tag in prompt
        ("<think>\nstill thinking when the budget ran", "", "still thinking when the budget ran"),
    ],
    ids=["closed", "leading-space", "opening-tag-in-template", "unclosed"],
)
def test_a_think_block_is_separated_from_the_answer(content, answer, thought):
    choice = normalise(_body({"content": content})).choices[0]
    assert (choice.text, choice.reasoning) == (answer, thought)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_reasoning_field_is_kept_apart(field):
    choice = normalise(_body({"content": "yes", field: "The answer names the rule."})).choices[0]
    assert (choice.text, choice.reasoning) == ("yes", "The answer names the rule.")


def test_list_content_joins_text_parts_and_keeps_thinking_apart():
    parts = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "brief thought"}]},
        {"type": "text", "text": "Par"},
        {"type": "text", "text": "is."},
    ]
    choice = normalise(_body({"content": parts})).choices[0]
    assert (choice.text, choice.reasoning) == ("Paris.", "brief thought")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([1, 2], "not a chat.completion"),
        ({"object": "list", "data": []}, "no 'choices'"),
        ({"choices": []}, "no 'choices'"),
        ({"choices": [{"index": 0, "text": "legacy completion"}]}, "no 'message'"),
        (_body({"content": 42}), "is a int, not text"),
        (_body({"content": [{"type": "image_url", "image_url": {}}]}), "unknown type 'image_url'"),
        (_body({"content": "ok"}, usage={"prompt_tokens": "12", "completion_tokens": 3}), "usage.prompt_tokens is '12'"),
        (_body({"content": "ok"}, usage={"prompt_tokens": -1}), "not a token count"),
        (_body({"content": "ok"}, usage="lots"), "'usage' is a str"),
    ],
    ids=["array", "models-list", "no-choices", "legacy", "number", "image", "usage-str", "usage-neg", "usage-type"],
)  # fmt: skip
def test_other_shapes_are_bad_replies_naming_the_problem(body, says):
    with pytest.raises(BadReply, match=says):
        normalise(body)


def test_finish_reason_is_recorded_and_length_means_truncated():
    choice = normalise(_body({"content": "The rule is"}, finish="length")).choices[0]
    assert choice.finish_reason == "length" and choice.truncated
    assert normalise(_body({"content": "x"}, finish=None)).choices[0].finish_reason == ""


def test_choices_come_back_in_index_order():
    body = {
        "choices": [
            {"index": 1, "message": {"content": "b"}},
            {"index": 0, "message": {"content": "a"}},
        ]
    }
    assert [c.text for c in normalise(body).choices] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ('```\n{"a": 1}\n```\n', '{"a": 1}'),
        ('  ```JSON\n{"a": 1}```', '{"a": 1}'),
        ('{"a": 1}', '{"a": 1}'),
        ('Here:\n```json\n{"a": 1}\n```', 'Here:\n```json\n{"a": 1}\n```'),  # not enclosing
        ('```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```', '```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```'),  # two
    ],
    ids=["json", "bare", "upper-no-newline", "none", "prose-before", "two-fences"],
)  # fmt: skip
def test_exactly_one_enclosing_fence_is_removed(text, expected):
    assert strip_fence(text) == expected


def test_fences_are_removed_only_when_json_was_asked_for():
    fenced = '```json\n{"a": 1}\n```'
    assert normalise(_body({"content": fenced}), json_expected=True).choices[0].text == '{"a": 1}'
    assert normalise(_body({"content": fenced})).choices[0].text == fenced


def test_logprobs_of_a_reply_with_reasoning_are_dropped():
    logprobs = {
        "content": [
            {
                "token": "<think>",
                "logprob": 0.0,
                "top_logprobs": [{"token": "<think>", "logprob": 0.0}],
            }
        ]
    }
    body = _body({"content": "<think>x</think>yes"})
    body["choices"][0]["logprobs"] = logprobs
    assert normalise(body).choices[0].top_logprobs == {}
    plain = _body({"content": "yes"})
    plain["choices"][0]["logprobs"] = {
        "content": [
            {"token": "yes", "logprob": -0.1, "top_logprobs": [{"token": "yes", "logprob": -0.1}]}
        ]
    }
    assert normalise(plain).choices[0].top_logprobs == {"yes": -0.1}


def test_split_think_leaves_text_without_tags_alone():
    assert split_think("no tags here") == ("no tags here", "")


class _Item(BaseModel):
    weight: int


def test_parse_json_tells_broken_json_from_a_schema_violation():
    with pytest.raises(InvalidOutput, match="not valid JSON"):
        parse_json(_Item, '{"weight": ')
    with pytest.raises(InvalidOutput, match="schema violation at weight"):
        parse_json(_Item, '{"weight": "heavy"}')
    assert parse_json(_Item, '{"weight": 3}') == _Item(weight=3)
