"""Helpers for tests/integration/test_reliability_*.py: ``autodata run`` as a subprocess in a
small throwaway project whose roles all point at a scripted server in the test process, and one
loopback Prefect server shared by every run in this pytest process (a temporary one per run
would add ~10-20 s each)."""

from __future__ import annotations

import atexit
import json
import resource
import shutil
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from pipeline_repo import BIN, REPO, pipeline_env, prefect_server

from autodata._killpoints import ENV as KILL_ENV
from autodata.testing.scripted_server import ScriptedServer

SOURCES = ("legal/late_delivery_clause.md", "math/water_tank.md")
PARAMS = """\
models:
  strong:
    privileged: true
loop:
  max_rounds: 2
  max_infra_retries: 1
gate:
  method: fixed  # stops and outages, not the gate: a known 3 + 3 rollouts per candidate
paths:
  sources: data/sources
  interim: data/interim
  processed: data/processed
  export: data/export
  metrics: metrics
  reports: reports
  cache: .cache/llm
  models: .cache/models
  logs: .cache/logs
"""
_PREFECT: tuple[str, Path] | None = None


def shared_prefect() -> tuple[str, Path]:
    """(API URL, PREFECT_HOME) of the one Prefect server of this process, started on first use."""
    global _PREFECT
    if _PREFECT is None:
        home = Path(tempfile.mkdtemp(prefix="autodata-prefect-"))
        stack = ExitStack()
        url = stack.enter_context(prefect_server(home))
        atexit.register(stack.close)
        atexit.register(shutil.rmtree, home, True)
        _PREFECT = url, home
    return _PREFECT


def make_project(root: Path, params: str = PARAMS, sources: tuple[str, ...] = SOURCES) -> Path:
    """``root`` with ``params.yaml`` (relative paths) and ``data/sources`` holding ``sources``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(params)
    for name in sources:
        target = root / "data" / "sources" / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "data" / "sources" / name, target)
    return root


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    requests: int  # chat requests the scripted server answered during the run


def run_cli(root: Path, server: ScriptedServer, *args: str, kill_at: str = "", base_url: str = "",
            env: dict[str, str] | None = None, max_file_bytes: int = 0, timeout: float = 240) -> Ran:  # fmt: skip
    """``autodata --params params.yaml run --quiet ARGS`` in ``root``, roles on ``server``.

    ``max_file_bytes``: RLIMIT_FSIZE for the run, so a write past it fails as on a full disk
    (EFBIG instead of ENOSPC: the same OSError path)."""
    url, home = shared_prefect()
    full = pipeline_env(base_url or server.base_url, url, home)
    for role in ("CHALLENGER", "VERIFIER", "WEAK", "STRONG", "JUDGE"):
        full[f"AUTODATA_MODELS__{role}__MAX_CONCURRENCY"] = "2"
    full.pop(KILL_ENV, None)
    if kill_at:
        full[KILL_ENV] = kill_at
    full.update(env or {})
    before = chat_count(server)
    proc = subprocess.run(
        [str(BIN / "autodata"), "--params", "params.yaml", "run", "--quiet", *args],
        cwd=root, env=full, capture_output=True, text=True, timeout=timeout,
        preexec_fn=(lambda: _limit_files(max_file_bytes)) if max_file_bytes else None,
    )  # fmt: skip
    server.settle()  # a request written just before a kill is recorded after it: this run's
    return Ran(proc.returncode, proc.stdout, proc.stderr, chat_count(server) - before)


def _limit_files(size: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def chat_count(server: ScriptedServer) -> int:
    return server.count(lambda r: r.path.endswith("/chat/completions"))


def unreadable_outputs(root: Path) -> list[str]:
    """Published (non-hidden) parquet and JSON files under ``root`` that do not parse."""
    bad = []
    for path in root.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # temp files (.name.XXXX.tmp), the cache, Prefect's home
        try:
            if path.suffix == ".parquet":
                pl.read_parquet(path)
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".jsonl":
                [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            bad.append(f"{path.relative_to(root)}: {exc}")
    return bad
