"""An outage does not poison the project (issue 12, item 3): after a run whose server failed
every call (each round ``infra_error``), a rerun against a healthy server asks again and ends
with the tables of a clean run. Failed calls were never cached; the rounds that held them are
not decisions and are run again, their completed calls coming from the cache."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from reliability_loop import Outcome, project, run_loop
from rich.console import Console

from autodata.llm.cache import CallCache, cache_key
from autodata.progress import Reporter
from autodata.settings import ROLES, Gate, Loop, Models, Paths, RoleModel, Settings
from autodata.testing.replies import Reply
from autodata.testing.roles import LoopScript, role_of
from autodata.testing.scripted_server import RecordedRequest, ScriptedServer
from autodata.workdir import first_failed_round
from tasks.draws import FRESH_FIRST
from tasks.generate import work_key

pytestmark = pytest.mark.usefixtures("prefect_harness")
Scripted = Callable[..., ScriptedServer]


def settings_for(root: Path, base_url: str) -> Settings:
    role = {"backend": "openai", "base_url": base_url, "model": "scripted", "max_retries": 0}
    models = Models(**{r: RoleModel(**role, privileged=(r == "strong")) for r in ROLES})
    paths = Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})
    gate = Gate(method="fixed")  # the seeds below assume 3 + 3 rollouts at selection
    return Settings(
        models=models, paths=paths, gate=gate, loop=Loop(max_rounds=2, max_infra_retries=1)
    )


def is_chat(request: RecordedRequest) -> bool:
    return request.path.endswith("/chat/completions")


class Outage:
    """Every call fails with HTTP 500."""

    def __call__(self, body: dict[str, Any]) -> Reply:
        return Reply(status=500, text="the GPU node is down")


async def test_a_rerun_after_an_outage_retries_and_ends_like_a_clean_run(
    scripted: Scripted, tmp_path: Path
) -> None:
    clean = await run_loop(settings_for(project(tmp_path / "clean"), scripted().base_url))
    assert set(clean.rounds["decision"]) == {"accepted"}

    root = project(tmp_path / "outage")
    broken = scripted(Outage())
    down = await run_loop(settings_for(root, broken.base_url))
    assert set(down.rounds["decision"]) == {"infra_error"}
    assert len(CallCache(root / ".cache" / "llm")) == 0  # failures are never cached

    healthy = scripted(LoopScript())
    shown = io.StringIO()
    settings = settings_for(root, healthy.base_url)
    again = await run_loop(settings, Reporter(Console(file=shown, width=300), quiet=False))
    assert healthy.count(is_chat) > 0  # before the fix: 0 requests, the outage read back
    assert again.rounds.equals(clean.rounds) and again.accepted.equals(clean.accepted)
    assert "rounds 1+ of an earlier run had failed model calls" in shown.getvalue()
    sources = pl.read_parquet(settings.paths.sources_table)
    assert first_failed_round(settings.paths.work_dir(work_key(sources))) is None


async def test_a_rerun_repeats_only_the_failed_calls(scripted: Scripted, tmp_path: Path) -> None:
    """Half an outage: the judge is down, so challenges and weak answers succeed and are cached.
    The rerun asks the judge again and none of the calls that had succeeded."""
    root = project(tmp_path / "judge-down")

    def judge_down(body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        if role_of(body) == "judge":
            return Reply(status=503, text="judge overloaded")
        return LoopScript()(body)

    first = scripted(judge_down)
    outcome: Outcome = await run_loop(settings_for(root, first.base_url))
    assert set(outcome.rounds["decision"]) == {"infra_error"}
    succeeded = {cache_key(r.body) for r in first.requests if is_chat(r) and role_of(r.body) != "judge"}  # fmt: skip

    second = scripted(LoopScript())
    again = await run_loop(settings_for(root, second.base_url))
    asked = [cache_key(r.body) for r in second.requests if is_chat(r)]
    assert asked and not set(asked) & succeeded
    assert {role_of(r.body) for r in second.requests if is_chat(r)} == {"judge", "strong", "weak"}
    weak_seeds = {
        r.body["seed"] for r in second.requests if is_chat(r) and role_of(r.body) == "weak"
    }
    assert min(weak_seeds) >= FRESH_FIRST  # the weak solver only re-scores what was accepted
    assert set(again.rounds["decision"]) == {"accepted"}
