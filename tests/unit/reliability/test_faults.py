"""20 % injected faults (hardening issue, item 2): 500/503, 429 with Retry-After, timeouts,
connection resets, truncated bodies, non-JSON bodies, and JSON that violates the schema. The run
completes with the same tables as a clean run; infrastructure failures never show up as quality
rejections; the summary says how many calls were retried."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability_loop import Outcome, project, run_loop
from rich.console import Console

from autodata import summary
from autodata.llm.client import RESAMPLE_SEED_STRIDE
from autodata.settings import ROLES, Loop, Models, Paths, RoleModel, Settings
from autodata.testing.replies import FAULT_KINDS, FaultInjector, Reply, faulty
from autodata.testing.roles import LoopScript, challenger_item, role_of
from autodata.testing.scripted_server import RecordedRequest, ScriptedServer

pytestmark = pytest.mark.usefixtures("prefect_harness")
Scripted = Callable[..., ScriptedServer]
RATE, SEED = 0.2, 7
TIMEOUT_S = 1.0  # the client's; an injected "timeout" answers after 2.5 s
QUALITY = ("too_easy", "suspicious_zero", "failed_strong", "failed_quality", "judge_unreliable")


def script() -> LoopScript:
    """LoopScript whose Challenger item ignores re-ask seeds: a re-ask after schema-violating
    JSON gets the item a clean run gets (a real model would write another, equally valid one)."""
    return LoopScript(
        challenger=lambda body: challenger_item(
            {**body, "seed": body["seed"] % RESAMPLE_SEED_STRIDE}
        )
    )


class SchemaViolations:
    """Half the first asks for JSON (challenger, verifier, and the judge's per-answer verdicts)
    get JSON that breaks the schema (a string weight "+8", an empty context; a verdict "maybe"
    and a criterion missing); re-asks are left alone."""

    def __init__(self, inner: Callable[[dict[str, Any]], Any]) -> None:
        self.inner = inner
        self.sent = 0

    def __call__(self, body: dict[str, Any]) -> Any:
        digest = hashlib.sha256(str(body["messages"]).encode()).digest()
        first_ask = body.get("seed", 0) < RESAMPLE_SEED_STRIDE
        json_role = role_of(body) if body.get("response_format") else None
        if json_role in ("challenger", "verifier", "judge") and first_ask and digest[0] % 2:
            self.sent += 1
            if json_role == "judge":
                return Reply(text='{"criterion_1": {"reason": "", "verdict": "maybe"}}')
            return Reply(text='{"context": "", "rubric": [{"criterion": "x", "weight": "+8"}]}')
        return self.inner(body)


def settings_for(root: Path, base_url: str, *, max_retries: int, max_infra_retries: int = 2) -> Settings:  # fmt: skip
    role = {"backend": "openai", "base_url": base_url, "model": "scripted",
            "max_retries": max_retries, "max_resamples": 2, "timeout_s": TIMEOUT_S}  # fmt: skip
    models = Models(**{r: RoleModel(**role, privileged=(r == "strong")) for r in ROLES})
    paths = Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})
    loop = Loop(max_rounds=2, max_infra_retries=max_infra_retries)
    return Settings(models=models, paths=paths, loop=loop)


def is_chat(request: RecordedRequest) -> bool:
    return request.path.endswith("/chat/completions")


def injected(injector: FaultInjector) -> set[str]:
    return {kind for kind in injector.injected if kind is not None}


@pytest.fixture
async def clean(scripted: Scripted, tmp_path: Path) -> Outcome:
    server = scripted(script())
    return await run_loop(settings_for(project(tmp_path / "clean"), server.base_url, max_retries=8))


async def test_a_run_with_20_percent_faults_ends_like_a_clean_run(
    clean: Outcome, scripted: Scripted, tmp_path: Path
) -> None:
    injector = faulty(script(), RATE, SEED, timeout_delay_s=2.5)
    violations = SchemaViolations(injector)
    server = scripted(violations)
    settings = settings_for(project(tmp_path / "faulty"), server.base_url, max_retries=8)
    outcome = await run_loop(settings)

    assert injected(injector) == set(FAULT_KINDS) and violations.sent >= 1  # every kind happened
    assert outcome.rounds.equals(clean.rounds)
    assert outcome.accepted.equals(clean.accepted)
    per_role = outcome.metrics["llm"]["per_role"]
    retried = sum(r["retries"] for r in per_role.values())
    faults = sum(kind is not None for kind in injector.injected)
    assert retried == faults  # one retry per transport fault, none for a good reply
    assert sum(r["resamples"] for r in per_role.values()) == violations.sent
    assert outcome.metrics["llm"]["http_requests"] == server.count(is_chat)

    shown = io.StringIO()
    summary.render(outcome.metrics, Console(file=shown, width=200), embedded=False)
    assert f"{retried} retried" in shown.getvalue()


async def test_infra_failures_are_never_quality_rejections(scripted: Scripted, tmp_path: Path) -> None:  # fmt: skip
    """No retries at all: every transport fault fails its call, and at 40 % some call of every
    candidate's 16 fails (1 challenger + 1 verifier + 3 weak + 3 strong + one judge call per
    graded answer: 3 + 3 + 2 controls; 0.6^16 < 0.1 %). Each such round is infra_error —
    retried in a later round, with no feedback to the Challenger — never too_easy,
    failed_quality, ..."""
    injector = faulty(script(), 2 * RATE, SEED, timeout_delay_s=2.5)
    violations = SchemaViolations(injector)
    server = scripted(violations)
    root = project(tmp_path / "no-retries")
    outcome = await run_loop(
        settings_for(root, server.base_url, max_retries=0, max_infra_retries=3)
    )

    assert injected(injector) == set(FAULT_KINDS) and violations.sent >= 1
    rounds = outcome.rounds
    assert set(rounds["decision"]) == {"infra_error"}
    assert rounds.height == 2 * (1 + 3)  # each source: its round, then its 3 infra retries
    assert set(rounds["feedback"]) == {""}
    assert all("failed" in reason for reason in rounds["reason"])
    assert outcome.metrics["decisions"]["failed_quality"] == 0
    failures = sum(r["failures"] for r in outcome.metrics["llm"]["per_role"].values())
    assert failures >= rounds.height
