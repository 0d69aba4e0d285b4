"""Verifiable mode's answer checks: extraction, numeric equivalence and the majority vote."""

from __future__ import annotations

from fractions import Fraction

import polars as pl
import pytest

from tasks.verifiable import (
    check_known_answers,
    equivalent,
    extract,
    known_answer,
    majority,
    number,
    reference_answer,
    votes,
)

TOL = 1e-4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pipe A adds 200 L/h.\nFinal answer: 12:30", "12:30"),
        ("**Final Answer:** 72", "72"),
        ("Final answer: \\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
        ("so the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("nested \\boxed{\\sqrt{\\frac{1}{4}}} ok", "\\sqrt{\\frac{1}{4}}"),
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
        ("Final answer: 5\nWait, no.\nFinal answer: 6", "6"),  # the last statement wins
        ("The answer is 42 I think", None),  # a mentioned number is not a stated answer
        ("", None),
        (None, None),
    ],
)
def test_extract(text: str | None, expected: str | None) -> None:
    assert extract(text) == expected


def test_final_answer_line_wins_over_earlier_boxes() -> None:
    assert extract("try \\boxed{3} ... no.\nFinal answer: 4") == "4"


def test_reference_without_a_final_line_is_the_whole_text() -> None:
    assert reference_answer(" 1,200 ") == "1,200"
    assert reference_answer("Working...\n#### 72") == "72"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1/2", "0.5"),
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{3}{4}", "75%"),
        ("50%", "0.5"),
        ("50\\%", "50"),
        ("1,200", "1200"),
        ("1200.0", "1,200"),
        ("−3", "-3"),
        ("$72", "72"),
        ("0.3333", "1/3"),  # within the relative tolerance 1e-4
        ("1e3", "1000"),
        ("12:30", " 12:30. "),
        ("\\text{twelve}", "Twelve"),
    ],
)
def test_equivalent(a: str, b: str) -> None:
    assert equivalent(a, b, TOL)
    assert equivalent(b, a, TOL)


@pytest.mark.parametrize(
    ("a", "b"),
    [("0.33", "1/3"), ("10", "100"), ("1,2,3", "123"), ("12:30", "12:45"), ("5", "-5")],
)
def test_not_equivalent(a: str, b: str) -> None:
    assert not equivalent(a, b, TOL)


def test_tolerance_is_the_setting() -> None:
    assert equivalent("3.14", "3.14159", 1e-3)
    assert not equivalent("3.14", "3.14159", 1e-4)
    assert not equivalent(None, "3", 1.0)


def test_numbers_stay_exact() -> None:
    assert number("1/3") == (Fraction(1, 3), False) == number("2/6")
    assert number("12%") == (Fraction(12), True)
    assert number("abc") is None and number("1,2,3") is None


def test_majority_groups_equivalent_answers() -> None:
    assert majority(["1/2", "0.5", "3", None, "3", "0.50"], TOL) == "1/2"


@pytest.mark.parametrize("answers", [["1", "2"], [None, None], [], ["1", "2", "1", "2", None]])
def test_no_majority_on_a_tie_or_without_answers(answers: list[str | None]) -> None:
    assert majority(answers, TOL) is None


def test_votes_name_the_key_and_each_roles_majority() -> None:
    answers = {"weak": ["41", "1/2", None], "strong": ["72", "72.0", "71"]}
    voted = votes(answers, "Working...\nFinal answer: 72", TOL)
    assert voted == {"answer_key": "72", "weak_vote": None, "weak_right": False,
                     "strong_vote": "72", "strong_right": True}  # fmt: skip


def test_a_weak_majority_on_the_key_is_right() -> None:
    voted = votes({"weak": ["5/36", "0.1389", "1/6"]}, "5/36", TOL)
    assert voted["weak_right"] and voted["weak_vote"] == "5/36"
    assert voted["strong_vote"] is None and not voted["strong_right"]


def _challenges(*rows: tuple[str, str, bool]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "candidate_id": f"c{i}",
                "source_id": sid,
                "reference_answer": ref,
                "qv_passed": ok,
                "qv_reason": "fine",
            }
            for i, (sid, ref, ok) in enumerate(rows)
        ]
    )


def test_known_answers_check_the_reference() -> None:
    sources = pl.DataFrame(
        {
            "source_id": ["s1", "s2", "s3"],
            "metadata": ['{"answer": "5/36"}', '{"answer": "Sold 48/2 = 24.\\n#### 72"}', "{}"],
        }
    )
    challenges = _challenges(
        ("s1", "Final answer: 0.13889", True),  # equivalent to 5/36 within the tolerance
        ("s2", "Final answer: 24", True),  # a step, not the answer
        ("s3", "Final answer: 9", True),  # no known answer: left alone
        ("s1", "Final answer: 1/2", False),  # already failed: its reason kept
        ("s2", "Sold 48 + 24 = 72.", True),  # right, but no final answer stated: says so
    )
    checked = check_known_answers(challenges, sources, TOL)
    assert checked["qv_passed"].to_list() == [True, False, True, False, False]
    assert checked["qv_reason"][1] == "reference answer '24' is not the source's known answer '72'"
    assert checked["qv_reason"][3] == "fine"
    assert checked["qv_reason"][4].startswith(
        "the reference answer states no final answer (end it with a line 'Final answer: ...')"
    )


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ('{"answer": 12}', "12"),
        ('{"answer": ""}', None),
        ("not json", None),
        (None, None),
        ("[1]", None),
    ],
)
def test_known_answer(metadata: str | None, expected: str | None) -> None:
    assert known_answer(metadata) == expected
