"""The scheduled refresh: pick up new or changed sources, reproduce the pipeline, record the version.

How it is incremental: the flow compares a fresh ingest of ``data/sources`` with the previous
sources table (:func:`tasks.ingest.new_or_changed`) to report what is new, then runs
``dvc repro``. DVC reruns only the stages whose dependencies changed, and inside ``generate``
the per-call LLM cache answers every call for an unchanged source, so only new or changed
sources reach a model. ``dvc repro`` (rather than calling the stages directly) keeps
``dvc.lock`` the record of what was built from what; ``dvc commit -f`` then records the dataset
version, ``dvc push`` uploads it when a remote is configured, and an optional git commit of
``dvc.lock`` + metrics makes the version a revision.

The deployment and its cron schedule live apart from the flow, in :mod:`flows.schedule`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from autodata import schemas
from autodata.errors import AutodataError
from autodata.settings import Paths, Settings, load_settings
from autodata.stagefile import read_or_empty
from tasks.ingest import ingest, new_or_changed

DEFAULTS = Paths()
VERSIONED = ("dvc.lock", str(DEFAULTS.metrics))  # what a git commit of a refresh records


def tool_env() -> dict[str, str]:
    """The environment for ``dvc`` and the ``autodata stage`` commands it runs: this
    interpreter's ``bin`` directory first on PATH, so a stage's ``autodata`` is this install."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_tool(args: list[str], cwd: Path) -> str:
    """Run ``args`` in ``cwd``; return its output, or raise naming the command and its tail."""
    proc = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        tail = " | ".join(output.splitlines()[-5:])
        raise AutodataError(f"`{' '.join(args)}` failed in {cwd} (exit {proc.returncode}): {tail}")
    return output


@task(name="find-new-sources", cache_policy=NO_CACHE)
def new_sources_task(settings: Settings) -> list[dict[str, Any]]:
    """The sections under ``paths.sources`` that the previous sources table does not have."""
    current, _ = ingest(settings.paths.sources, settings.ingest)
    previous = read_or_empty(settings.paths.sources_table, schemas.SOURCES, "sources")
    return new_or_changed(current, previous).select("source_id", "uri", "section").to_dicts()


@task(name="dvc-repro", cache_policy=NO_CACHE)
def repro_task(repo: Path) -> str:
    """``dvc repro``: rerun the stages whose dependencies changed (validate failing stops it)."""
    return run_tool(["dvc", "repro"], repo)


@task(name="dvc-commit", cache_policy=NO_CACHE)
def commit_task(repo: Path, accepted: Path) -> str:
    """``dvc commit -f``: make ``dvc.lock`` and the cache match the workspace; return the version
    (of the ``accepted`` table)."""
    run_tool(["dvc", "commit", "-f"], repo)
    return dataset_version(repo / "dvc.lock", accepted)


@task(name="dvc-push", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60])
def push_task(repo: Path) -> bool:
    """``dvc push`` to the default remote; False (nothing pushed) when no remote is configured."""
    if not run_tool(["dvc", "remote", "list"], repo):
        return False
    run_tool(["dvc", "push"], repo)
    return True


@task(name="git-commit", cache_policy=NO_CACHE)
def git_commit_task(repo: Path, message: str, versioned: tuple[str, ...] = VERSIONED) -> str:
    """Commit ``versioned`` (``dvc.lock`` and the metrics) if they changed; return the new short
    revision."""
    run_tool(["git", "add", *[p for p in versioned if (repo / p).exists()]], repo)
    if run_tool(["git", "status", "--porcelain", "--untracked-files=no"], repo):
        run_tool(["git", "commit", "-q", "-m", message], repo)
    return run_tool(["git", "rev-parse", "--short=12", "HEAD"], repo)


def rooted(settings: Settings, root: Path) -> Settings:
    """``settings`` with its relative paths made relative to ``root`` (as ``dvc.yaml``'s are)."""
    paths = {name: root / value for name, value in settings.paths.model_dump().items()}
    return settings.model_copy(update={"paths": Paths(**paths)})


def dataset_version(lock: Path, accepted: Path = DEFAULTS.accepted_table) -> str:
    """The DVC hash of the ``accepted`` table in ``dvc.lock`` ('' before the first repro)."""
    if not lock.exists():
        return ""
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    outs = stages.get("accept", {}).get("outs", [])
    return next((o.get("md5", "") for o in outs if Path(o["path"]).name == accepted.name), "")


@flow(name="refresh", validate_parameters=True)
def refresh_flow(
    params: str = "params.yaml", repo: str = ".", push: bool = True, git_commit: bool = False
) -> dict[str, Any]:
    """Ingest new sources, reproduce the pipeline for them, record the new dataset version."""
    log = get_run_logger()
    root = Path(repo).resolve()
    settings = rooted(load_settings(root / params), root)
    new = new_sources_task(settings)
    log.info("%d new or changed sources: %s", len(new), ", ".join(s["uri"] for s in new[:10]))
    log.info(repro_task(root))
    version = commit_task(root, settings.paths.accepted_table)
    pushed = push_task(root) if push else False
    message = f"refresh: {len(new)} new or changed sources (accepted md5 {version})"
    versioned = ("dvc.lock", str(settings.paths.metrics))
    revision = git_commit_task(root, message, versioned) if git_commit else None
    log.info("dataset version %s (pushed: %s, git: %s)", version, pushed, revision)
    return {"new_sources": new, "version": version, "pushed": pushed, "git_rev": revision}
