"""The Great Expectations gate, run for real on small synthetic tables (tests/unit/tasks/builders)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from builders import accepted_frame, accepted_row, empty_tables, gate_json, make_tables, round_row

from autodata import schemas
from autodata.errors import ValidationFailed
from autodata.settings import Gate, Validate
from tasks.validate import ValidationReport, raise_if_failed, validate, write_report
from tasks.validate_rows import parse_gate

CFG = Validate()
Tables = tuple[pl.DataFrame, pl.DataFrame]


def run(tables: Tables, cfg: Validate = CFG, docs: Path | None = None) -> ValidationReport:
    return validate(tables[0], tables[1], cfg, docs)


def set_cell(frame: pl.DataFrame, row: int, **values: object) -> pl.DataFrame:
    rows = frame.to_dicts()
    rows[row] |= values
    return pl.DataFrame(rows, schema=frame.schema)


def add_rounds(rounds: pl.DataFrame, *rows: dict[str, object]) -> pl.DataFrame:
    return pl.concat([rounds, pl.DataFrame(list(rows), schema=schemas.ROUNDS)])


def failed_names(report: ValidationReport) -> set[str]:
    return {r.name for r in report.failed}


# --- the good path --------------------------------------------------------------------------


def test_valid_tables_pass_every_expectation() -> None:
    report = run(make_tables())
    assert report.success, [(r.name, r.details) for r in report.failed]
    assert report.failed == []
    assert all(r.applicable and r.success is True for r in report.expectations)
    assert report.counts["accepted"] == 4
    assert report.counts["rounds"] == 14
    assert report.counts["decisions"]["accepted"] == 4
    raise_if_failed(report)  # no exception


def test_empty_accepted_is_valid_and_marks_median_not_applicable() -> None:
    report = run(empty_tables())
    assert report.success
    median = report.result("accepted.gap.median")
    assert median.applicable is False
    assert median.success is None
    assert "no accepted rows" in median.details["reason"]
    # row-level expectations pass vacuously, on zero rows
    unique = report.result("accepted.candidate_id.unique")
    assert unique.success is True
    assert unique.details["element_count"] == 0
    assert report.result("accepted.row_count").applicable is True
    assert report.counts["not_applicable"] == 1


def test_no_rounds_at_all_marks_infra_share_not_applicable() -> None:
    report = run((schemas.empty(schemas.ACCEPTED), schemas.empty(schemas.ROUNDS)))
    assert report.success
    assert report.result("rounds.infra_error_share").applicable is False
    assert report.result("accepted.gap.median").applicable is False


def test_empty_accepted_below_min_accepted_fails_row_count() -> None:
    report = run(empty_tables(), Validate(min_accepted=1))
    assert failed_names(report) == {"accepted.row_count"}
    assert report.result("accepted.row_count").details["observed_value"] == 0


# --- each invariant broken on purpose ------------------------------------------------------

Breaker = Callable[[Tables], tuple[Tables, Validate]]


def _accepted(row: int, **values: object) -> Breaker:
    def breaker(tables: Tables) -> tuple[Tables, Validate]:
        return (set_cell(tables[0], row, **values), tables[1]), CFG

    return breaker


def _bad_decision(tables: Tables) -> tuple[Tables, Validate]:
    rounds = add_rounds(tables[1], round_row("cand-odd", "src-x", "maybe_later"))
    return (tables[0], rounds), CFG


def _many_infra_errors(tables: Tables) -> tuple[Tables, Validate]:
    infra = [round_row(f"cand-infra-{i}", "src-y", "infra_error") for i in range(6)]
    return (tables[0], add_rounds(tables[1], *infra)), CFG


def _strict_median(tables: Tables) -> tuple[Tables, Validate]:
    return tables, Validate(min_median_gap=0.6)


def _rounds_accepted_off_gate(tables: Tables) -> tuple[Tables, Validate]:
    bad = round_row("cand-sneaky", "src-z", "accepted", weak_mean=0.9, weak_max=0.95)
    bad |= {"weak_min": 0.8, "strong_mean": 0.92, "strong_min": 0.9, "gap": 0.02}
    bad |= {"control_gap": 1.0}
    return (tables[0], add_rounds(tables[1], bad)), CFG


CASES: dict[str, tuple[Breaker, str, str]] = {
    "duplicate id": (
        _accepted(1, candidate_id="cand-000"),
        "accepted.candidate_id.unique",
        "cand-000",
    ),
    "null question": (_accepted(2, question=None), "accepted.question.not_null", "cand-002"),
    "blank context": (_accepted(2, context="  \n "), "accepted.context.not_blank", "cand-002"),
    "score 1.2": (_accepted(1, weak_max=1.2), "accepted.weak_max.in_range", "cand-001"),
    "gap below recorded min_gap": (
        _accepted(1, weak_mean=0.5, weak_max=0.6, strong_mean=0.65, gap=0.65 - 0.5),
        "accepted.gate.min_gap",
        "cand-001",
    ),
    "weak_mean above recorded max": (
        _accepted(3, weak_mean=0.7, weak_max=0.72, strong_mean=0.93, gap=0.93 - 0.7),
        "accepted.gate.weak_mean",
        "cand-003",
    ),
    "strong zero rollout": (
        _accepted(0, strong_min=0.0),
        "accepted.gate.strong_nonzero",
        "cand-000",
    ),
    "weak zero rollout": (_accepted(0, weak_min=0.0), "accepted.gate.weak_nonzero", "cand-000"),
    "strong_mean on the strict max": (
        _accepted(2, strong_mean=0.95, strong_min=0.9, gap=0.95 - 0.35),
        "accepted.gate.strong_mean",
        "cand-002",
    ),
    "gap not strong - weak": (_accepted(1, gap=0.45), "accepted.gate.gap_consistent", "cand-001"),
    "judge controls not separated": (
        _accepted(1, control_gap=0.1),
        "accepted.gate.control_margin",
        "cand-001",
    ),
    "non-answer met a criterion": (
        _accepted(2, null_criteria_met=1),
        "accepted.gate.null_control",
        "cand-002",
    ),
    "gate key missing": (
        _accepted(2, gate=json.dumps({"min_gap": 0.2})),
        "accepted.gate.recorded",
        "cand-002",
    ),
    "weight 9": (
        _accepted(1, rubric=[{"criterion": "a", "weight": 9}]),
        "accepted.rubric.weights",
        "cand-001",
    ),
    "weight 0": (
        _accepted(3, rubric=[{"criterion": "a", "weight": 2}, {"criterion": "b", "weight": 0}]),
        "accepted.rubric.weights",
        "cand-003",
    ),
    "empty rubric": (_accepted(0, rubric=[]), "accepted.rubric.non_empty", "cand-000"),
    "blank criterion": (
        _accepted(0, rubric=[{"criterion": " ", "weight": 2}]),
        "accepted.rubric.criteria",
        "cand-000",
    ),
    "accepted row without an accepted round": (
        _accepted(1, candidate_id="cand-ghost"),
        "accepted.candidate_id.accepted_round",
        "cand-ghost",
    ),
    "decision not in DECISIONS": (_bad_decision, "rounds.decision.known", "cand-odd"),
    "round accepted off its gate": (
        _rounds_accepted_off_gate,
        "rounds.accepted_gate",
        "cand-sneaky",
    ),
    "infra share too high": (_many_infra_errors, "rounds.infra_error_share", "cand-infra-0"),
    "median gap too low": (_strict_median, "accepted.gap.median", "cand-000"),
}


@pytest.mark.parametrize(("breaker", "name", "offender"), CASES.values(), ids=CASES.keys())
def test_broken_invariant_fails_naming_expectation_and_id(
    breaker: Breaker, name: str, offender: str
) -> None:
    tables, cfg = breaker(make_tables())
    report = run(tables, cfg)
    assert not report.success
    assert name in failed_names(report)
    assert offender in report.result(name).offending_ids
    with pytest.raises(ValidationFailed) as err:
        raise_if_failed(report)
    message = str(err.value)
    assert name in message
    assert offender in message
    assert "\n" not in message
    assert err.value.exit_code == 4


def test_each_row_is_judged_by_its_own_recorded_gate() -> None:
    accepted, rounds = make_tables()
    lenient = gate_json(Gate(method="fixed", min_gap=0.1))
    narrow = {"weak_mean": 0.5, "weak_max": 0.6, "strong_mean": 0.65, "gap": 0.65 - 0.5}
    accepted = set_cell(accepted, 1, **narrow, gate=lenient)
    rounds = rounds.with_columns(
        gate=pl.when(pl.col("candidate_id") == "cand-001").then(pl.lit(lenient)).otherwise("gate")
    )
    assert run((accepted, rounds)).success
    strict = set_cell(accepted, 1, gate=gate_json())
    assert failed_names(run((strict, rounds))) == {"accepted.gate.min_gap"}


def test_float_noise_at_a_threshold_is_not_a_violation() -> None:
    gap = 0.7 - 0.5  # 0.19999999999999996 < 0.2
    assert gap < Gate(method="fixed").min_gap
    accepted, rounds = make_tables()
    accepted = set_cell(accepted, 0, weak_mean=0.5, weak_max=0.6, strong_mean=0.7, gap=gap)
    assert run((accepted, rounds)).success


def test_failure_message_lists_every_failed_expectation() -> None:
    accepted, rounds = make_tables()
    accepted = set_cell(accepted, 0, rubric=[])
    accepted = set_cell(accepted, 3, question=None)
    report = run((accepted, rounds))
    assert failed_names(report) == {"accepted.rubric.non_empty", "accepted.question.not_null"}
    with pytest.raises(ValidationFailed, match="2 of") as err:
        raise_if_failed(report)
    assert "accepted.rubric.non_empty" in str(err.value)
    assert "accepted.question.not_null" in str(err.value)


def test_offending_ids_are_capped_at_20() -> None:
    rows = [accepted_row(i, rubric=[]) for i in range(25)]
    rounds = [round_row(r["candidate_id"], r["source_id"], "accepted") for r in rows]
    accepted = accepted_frame(rows)
    rounds_f = pl.DataFrame(rounds, schema=schemas.ROUNDS)
    result = run((accepted, rounds_f)).result("accepted.rubric.non_empty")
    assert result.details["unexpected_count"] == 25
    assert result.offending_ids == [f"cand-{i:03d}" for i in range(20)]


def test_null_candidate_id_is_reported_by_row_number() -> None:
    accepted, rounds = make_tables()
    report = run((set_cell(accepted, 2, candidate_id=None), rounds))
    assert report.result("accepted.candidate_id.not_null").offending_ids == ["row 2"]


# --- outputs --------------------------------------------------------------------------------


def test_data_docs_site_is_built_and_replaced(tmp_path: Path) -> None:
    docs = tmp_path / "reports" / "validation"
    report = run(make_tables(), docs=docs)
    assert report.data_docs == str(docs / "index.html")
    index = (docs / "index.html").read_text()
    assert "expectations/accepted.html" in index
    assert "expectations/rounds.html" in index
    pages = list((docs / "validations").rglob("*.html"))
    assert len(pages) == 2
    stale = docs / "stale.html"
    stale.write_text("old")
    run(empty_tables(), docs=docs)
    assert not stale.exists()
    assert (docs / "index.html").is_file()
    assert [p.name for p in docs.parent.iterdir()] == ["validation"]  # no temp dirs left


def test_data_docs_show_a_failing_run(tmp_path: Path) -> None:
    accepted, rounds = make_tables()
    report = run((set_cell(accepted, 0, strong_min=0.0), rounds), docs=tmp_path / "docs")
    assert not report.success
    page = next((tmp_path / "docs" / "validations" / "accepted").rglob("*.html")).read_text()
    assert "strong_min &gt; 0 when gate.forbid_zero_strong" in page or "forbid_zero_strong" in page


def test_write_report_is_plain_json(tmp_path: Path) -> None:
    accepted, rounds = make_tables()
    report = run((set_cell(accepted, 1, weak_max=1.2), rounds))
    path = write_report(report, tmp_path / "metrics" / "validation.json")
    data = json.loads(path.read_text())
    assert data["success"] is False
    assert data["counts"]["failed"] == len(report.failed)
    by_name = {e["name"]: e for e in data["expectations"]}
    assert by_name["accepted.weak_max.in_range"]["offending_ids"] == ["cand-001"]
    assert by_name["accepted.weak_max.in_range"]["details"]["unexpected_values"] == [1.2]
    assert by_name["accepted.gap.median"]["applicable"] is True


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (gate_json(), True),
        (None, False),
        ("{not json", False),
        ("[1, 2]", False),
        (json.dumps({"min_gap": 0.2}), False),
        (json.dumps(Gate(method="fixed").model_dump() | {"surprise": 1}), False),
        (json.dumps(Gate(method="fixed").model_dump() | {"min_gap": 1.5}), False),
    ],
)
def test_parse_gate_accepts_only_a_complete_valid_gate(raw: str | None, ok: bool) -> None:
    assert (parse_gate(raw) is not None) is ok
