"""Environmental failures end with one line that names the fix (issue 12, item 4): non-finite or
absurd numbers in params.yaml are rejected at load, a call cache that cannot be opened is named
(not a sqlite traceback), and text in an error is printed as it is, never read as rich markup."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import make_settings
from reliability_loop import project
from typer.testing import CliRunner

from autodata.cli import app
from autodata.errors import ConfigError, StorageError
from autodata.llm.cache import CallCache
from autodata.settings import load_settings


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize(
    ("yaml", "key", "why"),
    [
        ("models:\n  judge:\n    timeout_s: .inf\n", "models.judge.timeout_s", "finite"),
        ("vllm:\n  startup_timeout_s: .nan\n", "vllm.startup_timeout_s", "finite"),
        ("ingest:\n  max_file_mb: .inf\n", "ingest.max_file_mb", "finite"),
        ("models:\n  weak:\n    timeout_s: 1.0e+9\n", "models.weak.timeout_s", "at most 86400"),
    ],
)
def test_non_finite_or_absurd_numbers_are_rejected_at_load(
    tmp_path: Path, yaml: str, key: str, why: str
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml)
    with pytest.raises(ConfigError) as bad:
        load_settings(params)
    assert f"{key}: " in str(bad.value) and why in str(bad.value)
    result = CliRunner().invoke(app, ["--params", str(params), "stage", "accept"])
    assert result.exit_code == 2
    assert one_line(result.output).startswith(f"error: {params}: {key}")


def test_sane_values_still_load(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("models:\n  judge:\n    timeout_s: 86400\nvllm:\n  startup_timeout_s: 600\n")
    assert load_settings(params).models.judge.timeout_s == 86400


@pytest.mark.parametrize("blocker", ["parent is a file", "database is a directory"])
def test_an_unusable_call_cache_is_one_named_error(tmp_path: Path, blocker: str) -> None:
    cache = tmp_path / ".cache" / "llm"
    if blocker == "parent is a file":
        cache.parent.write_text("not a directory")
    else:
        (cache / "calls.sqlite").mkdir(parents=True)
    with pytest.raises(StorageError) as failed:
        CallCache(cache)
    message = str(failed.value)
    assert str(cache / "calls.sqlite") in message and "writable" in message
    assert "\n" not in message and not isinstance(failed.value.__cause__, sqlite3.Error)


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_whose_cache_cannot_be_opened_ends_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path)
    (tmp_path / ".cache").write_text("a file where the cache directory should be")
    settings = make_settings(tmp_path, "http://127.0.0.1:9/v1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    for role in ("CHALLENGER", "VERIFIER", "WEAK", "STRONG", "JUDGE"):
        spec = settings.models.role(role.lower())
        monkeypatch.setenv(f"AUTODATA_MODELS__{role}__BACKEND", spec.backend)
        monkeypatch.setenv(f"AUTODATA_MODELS__{role}__BASE_URL", str(spec.base_url))
        monkeypatch.setenv(f"AUTODATA_MODELS__{role}__MODEL", spec.model)
    result = CliRunner().invoke(app, ["--params", "params.yaml", "run", "--quiet"])
    assert result.exit_code == 2, result.output
    line = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "cannot open the call cache .cache/llm/calls.sqlite" in line[0]
    assert "Traceback" not in result.output and "sqlite3" not in result.output


def test_markup_in_an_error_is_printed_as_it_is(tmp_path: Path) -> None:
    missing = tmp_path / "[/bold]params[red].yaml"
    result = CliRunner().invoke(app, ["--params", str(missing), "stage", "accept"])
    assert result.exit_code == 2, result.output
    assert one_line(result.output) == (
        f"error: {missing}: file not found; pass --params PATH or create it (see README)"
    )
