"""Bad input (hardening issue, item 4), through the real CLI: each fatal case ends
``autodata run`` with exactly one line that names the culprit and the fix, a non-zero exit,
and nothing half-written. (Bad single files, skipped and counted, are checked on the runs of
test_reliability_kill.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pipeline_repo import free_port
from reliability_cli import PARAMS, Ran, make_project, run_cli, unreadable_outputs

from autodata.testing.roles import LoopScript
from autodata.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration
ROLES = ("CHALLENGER", "VERIFIER", "WEAK", "STRONG", "JUDGE")
WRONG_KEY = "sk-wrong-3f9d1c"


@dataclass
class Case:
    """How to break the project, the exit code, and what the one line must say."""

    params: str = PARAMS
    sources: bool = True
    bad_file: bool = False
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    unreachable: bool = False
    server_key: str | None = None
    max_file_bytes: int = 0
    code: int = 2
    says: tuple[str, ...] = ()


CASES = {
    "missing sources dir": Case(sources=False, says=("source directory data/sources not found", "put .txt")),
    "empty sources dir": Case(params=PARAMS.replace("sources: data/sources", "sources: data/empty"),
                              says=("no source files in data/empty", "set paths.sources")),
    "yaml syntax": Case(params=PARAMS + "gate: [\n", says=("params.yaml: not valid YAML", "line")),
    "unknown key": Case(params=PARAMS + "gate:\n  min_gapp: 0.3\n",
                        says=("unknown key 'gate.min_gapp'", "check its spelling")),
    "wrong type": Case(params=PARAMS + "rollouts:\n  weak: many\n",
                       says=("rollouts.weak", "(got 'many')", "AUTODATA_ROLLOUTS__WEAK")),
    "min above max": Case(params=PARAMS + "gate:\n  strong_mean_min: 0.9\n  strong_mean_max: 0.5\n",
                          says=("gate", "strong_mean_min must be below strong_mean_max", "fix it in params.yaml")),
    "unknown backend": Case(env={"AUTODATA_MODELS__JUDGE__BACKEND": "ollama"},
                            says=("models.judge.backend", "'vllm' or 'openai'", "(got 'ollama')")),
    "unreachable url": Case(unreachable=True, code=3,
                            says=("challenger: cannot reach http://127.0.0.1:", "start the server or fix models.challenger.base_url")),
    "wrong api key (401)": Case(server_key="sk-right", env={f"AUTODATA_MODELS__{r}__API_KEY": WRONG_KEY for r in ROLES},
                                code=3, says=("refused the API key (HTTP 401)", "AUTODATA_MODELS__CHALLENGER__API_KEY")),
    "unknown model (404)": Case(env={"AUTODATA_MODELS__WEAK__MODEL": "no-such-model"}, code=3,
                                says=("weak:", "has no model 'no-such-model'", "it serves: scripted", "models.weak.model")),
    "disk full": Case(max_file_bytes=3000,
                      says=("could not write data/processed/sources.parquet", "free disk space")),
    "strict and a bad file": Case(bad_file=True, args=("--strict",),
                                  says=("binary.txt: binary data", "rerun without --strict")),
}  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(LoopScript()) as srv:
        yield srv


@pytest.mark.parametrize("name", CASES)
def test_a_fatal_case_is_one_line_a_non_zero_exit_and_nothing_half_written(
    name: str, tmp_path: Path, server: ScriptedServer
) -> None:
    case = CASES[name]
    root = make_project(tmp_path, case.params, () if not case.sources else ("math/water_tank.md",))
    if not case.sources:
        (root / "data").mkdir(exist_ok=True)
    (root / "data" / "empty").mkdir(parents=True)
    if case.bad_file:
        (root / "data" / "sources" / "binary.txt").write_bytes(b"\x00\x01binary")
    keyed = ScriptedServer(LoopScript(), api_key=case.server_key) if case.server_key else None
    try:
        base_url = f"http://127.0.0.1:{free_port()}/v1" if case.unreachable else ""
        ran = run_cli(root, keyed or server, *case.args, base_url=base_url, env=case.env,
                      max_file_bytes=case.max_file_bytes)  # fmt: skip
    finally:
        if keyed is not None:
            keyed.close()
    assert_one_line(ran, case)
    assert ran.requests == 0  # no model call was made
    processed = root / "data" / "processed"
    assert (
        not (processed / "rounds.parquet").exists()
        and not (processed / "accepted.parquet").exists()
    )
    assert not (root / "data" / "export").exists() and not (root / "metrics").exists()
    assert unreadable_outputs(root) == []


def assert_one_line(ran: Ran, case: Case) -> None:
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert ran.returncode == case.code, ran.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), ran.stderr
    assert ran.stdout == ""
    for words in case.says:
        assert words in lines[0], lines[0]
    assert WRONG_KEY not in ran.stderr
