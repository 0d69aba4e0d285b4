"""benchmarks/growth.py, the diagnosis behind the overhead growth figure, in a tiny mode: it runs
both sizes and reports CPU and garbage-collection figures for each (no figures asserted)."""

from __future__ import annotations

import pytest

from benchmarks import growth

pytestmark = pytest.mark.timeout(300)


def test_growth_reports_cpu_and_collections_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    growth.main(["10", "20", "--freeze"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].lstrip().startswith("10 sources:") and lines[1].lstrip().startswith(
        "20 sources:"
    )
    assert "ms/call" in lines[0] and "collections [" in lines[0]
    assert lines[2].startswith("large / small: calls 2.00")  # twice the sources, twice the calls
