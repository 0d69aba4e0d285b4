"""`autodata optimize run|show|promote` in-process on the scripted server playing the
optimization simulation, and a run killed mid-iteration (SIGKILL) that the same command resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autodata.cli import app
from autodata.io import write_parquet
from autodata.settings import OPTIMIZER_ROLES, ROLES, Paths, load_settings
from autodata.testing.scripted_server import ScriptedServer
from benchmarks import common
from benchmarks.sim_optimize import OptimizeScript, role_with_optimizer
from tasks import optimize_store as store
from tasks.optimize_surface import surface_of

pytestmark = pytest.mark.timeout(600)
runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]  # the subprocess runs this checkout's code


def project(root: Path, base_url: str, iterations: int) -> Path:
    """A params.yaml (with a comment) on the scripted server, its sources table written."""
    role = {"backend": "openai", "base_url": base_url, "model": "scripted"}
    models = {r: role | ({"privileged": True} if r == "strong" else {}) for r in (*ROLES, *OPTIMIZER_ROLES)}  # fmt: skip
    paths = {k: str(root / str(v)) for k, v in Paths().model_dump().items()}
    optimize = {"iterations": iterations, "minibatch": 4, "max_rounds": 1}
    params = root / "params.yaml"
    params.write_text("# kept by promote\n" + yaml.safe_dump({"models": models, "paths": paths, "optimize": optimize}))  # fmt: skip
    write_parquet(common.synthetic_sources(18), load_settings(params).paths.sources_table)
    return params


def invoke(params: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--params", str(params), *args])
    assert result.exit_code == code, result.output
    return result.output


@pytest.mark.usefixtures("prefect_harness")
def test_run_show_and_promote(tmp_path: Path) -> None:
    with ScriptedServer(OptimizeScript()) as server:
        params = project(tmp_path, server.base_url, iterations=3)
        shown = invoke(params, "optimize", "run", "--quiet")
    assert (
        "autodata optimize" in shown and "promote the best with `autodata optimize promote" in shown
    )
    settings = load_settings(params)
    variants = store.read_variants(settings.paths)
    assert all(v["variant_id"] in invoke(params, "optimize", "show") for v in variants.values())
    listed = invoke(params, "recipes")  # no generated data yet: the optimizer's tree alone
    assert "optimizer variants" in listed and all(v in listed for v in variants)
    best = max((v for v in variants.values() if v["kept"]), key=lambda v: v["validation_score"])
    assert f"now runs variant {best['variant_id']}" in invoke(params, "optimize", "promote", "best")
    promoted = load_settings(params)
    assert surface_of(promoted) == best["surface"]
    assert promoted.recipe_hash() == best["variant_id"]
    assert params.read_text().startswith("# kept by promote\n")
    assert "no variant matches 'zzz'" in invoke(params, "optimize", "promote", "zzz", code=2)


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_killed_mid_iteration_resumes_without_asking_again(tmp_path: Path) -> None:
    with ScriptedServer(OptimizeScript()) as server:
        params = project(tmp_path, server.base_url, iterations=3)
        env = os.environ | {"AUTODATA_TEST_KILL_AT": "llm:response:editor:2",
                            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # fmt: skip
        argv = ["--params", str(params), "optimize", "run", "--quiet"]
        killed = subprocess.run([sys.executable, "-c", f"from autodata.cli import app; app({argv!r})"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        state = store.read_state(load_settings(params).paths)
        assert state is not None and state.iteration == 1
        invoke(params, "optimize", "run", "--quiet")
        editors = sum(role_with_optimizer(r.body) == "editor" for r in server.requests if r.body)
    assert editors == 3  # iteration 2's reply came from the cache
    paths = load_settings(params).paths
    steps = [e for e in store.read_jsonl(store.history_path(paths)) if e["step"] != "stop"]
    assert len(steps) == len({e["key"] for e in steps})
    assert [e["iteration"] for e in steps if e["step"] == "propose"] == [1, 2, 3]
