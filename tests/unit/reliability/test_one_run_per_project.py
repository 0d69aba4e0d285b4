"""One run per project at a time (issue 12, item 2): a second run stops with one line naming the
holder's pid instead of billing a second set of calls; the lock dies with its holder (even by
SIGKILL); what a killed run left behind is removed; each summary counts its own run's calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from reliability_loop import QUIET, project
from typer.testing import CliRunner

from autodata import schemas
from autodata.cli import app
from autodata.errors import ProjectBusy
from autodata.runlock import project_lock, remove_leftovers
from autodata.settings import Paths
from autodata.testing.scripted_server import ScriptedServer
from flows.generate import generate_flow
from tasks.accept import finalize
from tasks.ingest import ingest_to_files

HOLDER = """
import sys, time
from pathlib import Path
from autodata.runlock import project_lock
from autodata.settings import Paths
with project_lock(Paths(interim=Path(sys.argv[1])), "autodata run --quiet"):
    print("HOLDING", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of the project in ``tmp_path``."""
    interim = tmp_path / "data" / "interim"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(interim)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "HOLDING"
    yield proc
    proc.kill()
    proc.wait()


def paths_in(root: Path) -> Paths:
    return Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})


def test_a_second_run_is_refused_naming_the_holder(
    holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    with pytest.raises(ProjectBusy) as busy, project_lock(paths_in(tmp_path), "autodata run"):
        pytest.fail("the lock was taken twice")
    message = str(busy.value)
    assert f"pid {holder.pid} (`autodata run --quiet`)" in message and "\n" not in message
    holder.kill()  # SIGKILL: the kernel drops the lock with its holder
    holder.wait()
    with project_lock(paths_in(tmp_path), "autodata run"):
        assert paths_in(tmp_path).lock_file.read_text().startswith(f"{os.getpid()} ")


def test_the_cli_refuses_with_one_line_before_any_work(
    holder: subprocess.Popen[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    for args in (["run", "--quiet"], ["stage", "ingest"], ["stage", "accept"]):
        result = CliRunner().invoke(app, ["--params", "params.yaml", *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: another autodata run")
        assert f"pid {holder.pid}" in lines[0]
    assert not (tmp_path / "data" / "processed").exists()  # not even ingest ran


def test_leftovers_of_a_killed_run_are_removed_and_nothing_else(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    keep = [
        paths.interim / "challenges.parquet",
        paths.export / "sft.jsonl",
        paths.cache / ".x.tmp",
    ]
    gone = [paths.interim / "work" / "r" / "round_01" / ".challenges.parquet.k3j2.tmp",
            paths.metrics / ".generate.json.a1b2.tmp", paths.export / ".hf.q9z8.old" / "x",
            paths.reports / ".plots.zz11.tmp" / "a.png"]  # fmt: skip
    for path in keep + gone:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    remove_leftovers(paths)
    assert [p for p in keep if not p.exists()] == []
    assert [p for p in tmp_path.rglob(".*") if p.suffix in (".tmp", ".old") and paths.cache not in p.parents] == []  # fmt: skip


@pytest.mark.usefixtures("prefect_harness")
async def test_the_summary_counts_this_runs_calls_not_the_shared_file(
    scripted: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    from conftest import make_settings

    server = scripted()
    settings = make_settings(project(tmp_path), server.base_url)
    ingest_to_files(settings.paths, settings.ingest)
    sources = schemas.check(pl.read_parquet(settings.paths.sources_table), schemas.SOURCES, "sources")  # fmt: skip
    loop = await generate_flow(settings, sources, QUIET)
    chats = server.count(lambda r: r.path.endswith("/chat/completions"))
    assert sum(c["calls"] for c in loop.calls.values()) == chats
    # another run in the project (before the lock) rewrote the file meanwhile
    other = {role: {"calls": 1000} for role in loop.calls}
    (settings.paths.interim / "calls.json").write_text(json.dumps(other))
    metrics = finalize(settings, "rev", loop.calls)
    assert metrics["llm"]["http_requests"] == chats
