"""Small user-facing behaviours: the top-level `ingest` shortcut, the run summary's wording, and
the announcement before a managed vLLM server starts."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLE_SOURCES
from rich.console import Console
from typer.testing import CliRunner

from autodata import summary
from autodata.cli import app
from autodata.cli_common import check_own_packages
from autodata.errors import ConfigError
from autodata.llm.backends import _endpoints
from autodata.settings import RoleModel


def test_top_level_ingest_is_the_stage_command(tmp_path: Path) -> None:
    shutil.copytree(SAMPLE_SOURCES, tmp_path / "data" / "sources")
    params = tmp_path / "params.yaml"
    params.write_text(f"paths:\n  sources: {tmp_path}/data/sources\n  processed: {tmp_path}/out\n")
    result = CliRunner().invoke(app, ["--params", str(params), "ingest"])
    assert result.exit_code == 0, result.output
    assert "ingest: 6 sources" in result.output
    assert (tmp_path / "out" / "sources.parquet").exists()


def _metrics(accepted: int) -> dict:
    decisions = {"accepted": accepted, "failed_quality": 5, "judge_unreliable": 2}
    return {
        "decisions": decisions, "sources": 6, "accepted": accepted, "acceptance_rate": accepted / 6,
        "mean_rounds_per_accepted": 2.0 if accepted else None,
        "llm": {"logical_calls": 10, "http_requests": 12, "per_role": {"judge": {"retries": 2, "cache_hits": 1}}},
    }  # fmt: skip


def test_summary_with_nothing_accepted_says_why_and_shows_no_none() -> None:
    console = Console(record=True, width=200)
    summary.render(_metrics(0), console, embedded=True)
    text = console.export_text()
    assert "mean rounds per accepted -" in text and "None" not in text
    assert "2 retried" in text and "1 from cache" in text
    assert "Most rounds ended as failed_quality (5)" in text
    assert "Using real models" in text


def test_summary_with_acceptances_has_no_excuse() -> None:
    console = Console(record=True, width=200)
    summary.render(_metrics(2), console, embedded=True)
    text = console.export_text()
    assert "mean rounds per accepted 2.0" in text and "Nothing was accepted" not in text


class _Registry:
    """Stands in for ServerRegistry: records which models were asked for."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def servers(self) -> dict[str, object]:
        return {m: object() for m in self.started}

    def url_for(self, model: str) -> tuple[str, str]:
        self.started.append(model)
        return "http://127.0.0.1:1/v1", "served"


def test_a_managed_server_start_is_announced_once() -> None:
    registry, said = _Registry(), []
    spec = RoleModel(backend="vllm", model="embedded:smollm2-135m-instruct")
    for _ in range(2):
        asyncio.run(_endpoints(spec, registry, said.append))  # type: ignore[arg-type]
    assert len(said) == 1 and "starting a vLLM server" in said[0]
    external = RoleModel(backend="openai", base_url="http://x/v1", model="m")
    assert asyncio.run(_endpoints(external, registry, said.append)) == (["http://x/v1"], "m")  # type: ignore[arg-type]
    assert len(said) == 1


def test_the_summary_counts_causes_per_role_and_ends_with_the_dominant_one() -> None:
    metrics = _metrics(0)
    metrics["decisions"] = {"accepted": 0, "infra_error": 4}
    metrics["llm"]["per_role"] = {
        "judge": {"retries": 40, "causes": {"http_429": 40, "timeout": 2}},
        "weak": {"retries": 0, "causes": {"truncated": 6}},
    }
    console = Console(record=True, width=200)
    summary.render(metrics, console, embedded=False)
    lines = console.export_text().strip().splitlines()
    table = "\n".join(lines)
    assert "HTTP 429 (rate limited)" in table and "replies cut at max_tokens" in table
    assert lines[-1].startswith("main cause of failed or retried calls: judge: 40 × HTTP 429")
    assert "models.judge.max_concurrency" in lines[-1]


def test_without_failed_calls_there_is_no_cause_line() -> None:
    console = Console(record=True, width=200)
    summary.render(_metrics(2), console, embedded=False)
    assert "main cause" not in console.export_text()


def test_after_a_failed_validation_the_cause_comes_from_the_run_metrics(tmp_path: Path) -> None:
    path = tmp_path / "generate.json"
    assert summary.cause_of_failed_run(path) is None
    path.write_text('{"llm": {"per_role": {"strong": {"causes": {"http_503": 5}}}}}')
    assert summary.cause_of_failed_run(path) == (
        "main cause of failed or retried calls: strong: 5 × HTTP 503 (server error) — "
        "check the server's logs for role strong"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["ingest"],
        ["models", "check"],
        ["models", "prepare"],
        ["stage", "accept"],
        ["lineage", "abc"],
        ["recipes"],
        ["schedule", "--cron", "0 3 * * *"],
    ],
)
def test_every_command_ends_an_autodata_error_with_one_line(
    tmp_path: Path, args: list[str]
) -> None:
    """No command catches it itself: the command tree (``cli_common.Commands``) prints the one
    line and exits with the error's code."""
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(app, ["--params", str(missing), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [
        f"error: {missing}: file not found; pass --params PATH or create it (see README)"
    ]


def test_flows_and_tasks_must_import_from_beside_autodata(tmp_path: Path) -> None:
    """Installed as top-level packages, ``flows`` and ``tasks`` can be shadowed (another
    distribution of that name, a tasks.py on sys.path): one line before anything runs."""
    check_own_packages()  # this checkout: both beside autodata
    with pytest.raises(ConfigError, match=r"the module 'flows' imports from .*, not from "):
        check_own_packages(tmp_path)
