"""Shared fixtures: settings wired to a scripted loopback server, and one Prefect harness.

The scripted OpenAI-compatible server (real HTTP on 127.0.0.1) is the only test double.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autodata import env

env.configure(Path(__file__).resolve().parents[1])

from autodata.settings import ROLES, Gate, Models, Paths, RoleModel, Settings  # noqa: E402
from autodata.testing.roles import LoopScript  # noqa: E402
from autodata.testing.scripted_server import ScriptedServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SOURCES = REPO / "data" / "sources"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (startup takes ~10-20 s here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def make_settings(root: Path, base_url: str, **sections: Any) -> Settings:
    """Settings whose roles all use the scripted server and whose paths live under ``root``.

    The gate is the fixed 3+3 one unless the test names a ``gate.method``: these tests script
    exact scores for exactly 3 + 3 rollouts and check the fixed gate's rules; the sequential
    gate (the default) has tests of its own that choose it."""
    role = {"backend": "openai", "base_url": base_url, "model": "scripted", "max_retries": 2}
    models = Models(**{r: RoleModel(**role, privileged=(r == "strong")) for r in ROLES})
    paths = Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})
    gate = sections.pop("gate", Gate())
    gate = Gate(**gate) if isinstance(gate, dict) else gate
    if "method" not in gate.model_fields_set:
        gate = gate.model_copy(update={"method": "fixed"})
    return Settings(models=models, paths=paths, gate=gate, **sections)


@pytest.fixture
def sources_dir(tmp_path: Path) -> Path:
    """A copy of the repo's sample sources (6 passages in 3 domains)."""
    target = tmp_path / "data" / "sources"
    shutil.copytree(SAMPLE_SOURCES, target)
    return target


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory: ``scripted(responder=LoopScript(...))`` starts a server, closed after the test."""
    servers: list[ScriptedServer] = []

    def start(responder: Any = None, **kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(responder if responder is not None else LoopScript(), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
