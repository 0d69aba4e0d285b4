"""The whole-process benchmark's parts (``benchmarks/process.py``), without its four ``autodata
run`` processes: its sources survive ingest's near-duplicate check, a rerun's reset keeps only
Prefect's home and the sources, the bare client runs as a process of its own, and the headline
figures are the medians it says (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autodata.settings import Ingest, Paths
from benchmarks import process
from tasks.ingest import ingest_to_files


def test_its_sources_are_all_kept_by_ingest(tmp_path: Path) -> None:
    process.new_project(tmp_path / "p", 12)
    paths = Paths(**{n: tmp_path / "p" / str(v) for n, v in Paths().model_dump().items()})
    kept, skipped = ingest_to_files(paths, Ingest())
    assert (kept, skipped) == (12, 0)


def test_a_reset_keeps_prefects_home_and_the_sources_only(tmp_path: Path) -> None:
    root = process.new_project(tmp_path / "p", 2)
    for name in (".prefect/prefect.db", ".cache/llm/calls.sqlite", "data/interim/x.parquet",
                 "data/processed/sources.parquet", "metrics/generate.json", "reports/r.html"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    process.reset(root)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == [".prefect/prefect.db", "data/sources/case-00000.md", "data/sources/case-00001.md", "params.yaml"]  # fmt: skip


def test_the_bare_client_is_a_process_timed_against_its_own_server() -> None:
    out = process.bare(30, process.Options(concurrency=8, latency_s=0.01))
    assert out["requests"] == 30
    assert 0 < out["first_request_s"] < out["last_reply_s"] < out["wall_s"]


def test_the_headline_figures_are_medians_of_the_arms() -> None:
    def runs(arm: str, first: list[float], wall: list[float]) -> list[dict]:
        return [{"arm": arm, "wall_s": w, "first_request_s": f, "last_reply_s": w - 1,
                 "after_last_reply_s": 1.0, "requests": 40} for f, w in zip(first, wall, strict=True)]  # fmt: skip

    out = process.summarise(
        runs("fresh", [12, 14, 13], [30, 31, 29]) + runs("setup", [5, 4, 9], [20, 19, 25])
        + runs("configured", [3, 3.5, 2], [17, 18, 16]) + runs("bare", [0.2] * 3, [4, 5, 4.5])
    )  # fmt: skip
    assert out["prefect_s"] == pytest.approx(5 - 3)
    assert out["fresh_extra_s"] == pytest.approx(13 - 5)
    assert out["ratio"] == pytest.approx(20 / 4.5)
