"""`autodata bench optimize --quick` end to end (the load server's optimization simulation): the
optimizer raises the validation pass rate well above the seed's, never keeps a harmful variant,
refuses the forbidden edits (the measurement) and leaves the measurement unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import common
from benchmarks import optimize as bench

pytestmark = pytest.mark.timeout(600)


def test_quick_optimization_improves_and_refuses_what_it_must(prefect_harness: None, tmp_path: Path) -> None:  # fmt: skip
    result = bench.run(bench.Options.quick(), harness=False)
    common.show("optimize", bench.rows(result))
    data = json.loads(common.write_result("optimize", result, tmp_path).read_text())
    assert {"seed_score", "best_score", "iterations", "accepted_variants", "rejected_forbidden"} <= data.keys()  # fmt: skip
    assert data["best_score"] >= data["seed_score"] + 0.2
    assert data["iterations"] == bench.Options.quick().iterations
    assert data["accepted_variants"] >= 2
    assert data["harmful_evaluated"] >= 1 and data["harmful_kept"] == 0
    assert data["rejected_forbidden"] >= 1
    assert data["measurement_unchanged"] and data["off_surface_variants"] == 0
    assert set(data["best_rules"]) <= {
        "no-leak",
        "multi-step",
        "doc-specific",
        "rubric",
        "self-test",
    }
