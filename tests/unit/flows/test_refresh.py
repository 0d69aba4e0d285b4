"""flows.refresh helpers without the Prefect engine (``task.fn``); the served flow itself runs in
tests/integration/test_dvc_pipeline.py against a real Prefect server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autodata.errors import AutodataError
from autodata.settings import Settings
from flows.refresh import dataset_version, git_commit_task, push_task, rooted, run_tool, tool_env

LOCK = """schema: '2.0'
stages:
  accept:
    cmd: autodata stage accept
    outs:
    - path: data/processed/rounds.parquet
      md5: aaa
    - path: data/processed/accepted.parquet
      md5: bbb
"""


def git_repo(path: Path) -> Path:
    for args in (
        ["init", "-q"],
        ["config", "user.email", "t@t.invalid"],
        ["config", "user.name", "t"],
    ):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path


def test_dataset_version_is_the_accepted_tables_md5(tmp_path: Path) -> None:
    assert dataset_version(tmp_path / "dvc.lock") == ""
    (tmp_path / "dvc.lock").write_text(LOCK)
    assert dataset_version(tmp_path / "dvc.lock") == "bbb"


def test_rooted_makes_relative_paths_relative_to_the_repo(tmp_path: Path) -> None:
    settings = rooted(Settings(), tmp_path)
    assert settings.paths.sources_table == tmp_path / "data" / "processed" / "sources.parquet"
    assert settings.paths.cache == tmp_path / ".cache" / "llm"


def test_tools_run_with_this_interpreters_bin_first_on_path() -> None:
    import sys

    assert tool_env()["PATH"].split(":")[0] == str(Path(sys.executable).parent)


def test_a_failing_tool_names_the_command_and_its_output(tmp_path: Path) -> None:
    with pytest.raises(AutodataError, match=r"`git rev-parse HEAD` failed in .* \(exit 128\): .*"):
        run_tool(["git", "rev-parse", "HEAD"], git_repo(tmp_path))


def test_git_commit_records_lock_and_metrics_once(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    (repo / "dvc.lock").write_text(LOCK)
    (repo / "metrics").mkdir()
    (repo / "metrics" / "generate.json").write_text("{}\n")
    (repo / "untracked.txt").write_text("not part of a dataset version\n")
    first = git_commit_task.fn(repo, "refresh: 1 new source")
    assert run_tool(["git", "log", "--format=%s"], repo) == "refresh: 1 new source"
    assert set(run_tool(["git", "ls-files"], repo).split()) == {"dvc.lock", "metrics/generate.json"}
    assert git_commit_task.fn(repo, "refresh: nothing new") == first  # nothing changed: no commit


def test_push_without_a_remote_pushes_nothing(tmp_path: Path) -> None:
    repo = git_repo(tmp_path)
    run_tool(["dvc", "init", "-q"], repo)
    assert push_task.fn(repo) is False
