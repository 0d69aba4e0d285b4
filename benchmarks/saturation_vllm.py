"""Saturation against the real vLLM CPU server: the pipeline's tokens/s over a bare client's.

The embedded 135M model never writes an item that passes quality (DESIGN §4), so the challenger
and verifier are scripted at the HTTP boundary (the load server's ``loop`` mode, no latency) and
the weak, strong and judge roles, where the calls are, go to the real server. One managed server
(``ServerRegistry``, the embedded model) serves three runs on the same prompts: the generate
stage once to record every request body sent to vLLM, a bare asyncio client replaying those
bodies at the same concurrency, then the generate stage again (fresh cache), so both timed runs
meet the same warm server (vLLM's prefix cache included). Tokens/s = vLLM completion tokens ÷
wall seconds (the pipeline's wall includes its scripted challenge stage). Roles reach the server
as ``backend: openai``, so requests carry no x-guidance hints (the managed server already
disables JSON whitespace).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autodata.llm import client as llm_client
from autodata.settings import EMBEDDED_MODEL, Loop, Paths, Settings, Vllm
from benchmarks import bare, common
from benchmarks.loadserver import REPO, LoadConfig, LoadServerProcess

VENV = REPO / ".venv-vllm"
CONCURRENCY = 8  # vLLM on 2 CPU cores: more only queues inside the server


def skip_reason(venv: Path = VENV) -> str | None:
    """Why the vLLM part cannot run with the environment ``venv``, or None."""
    ready = venv / ".autodata-ready"
    if not ready.exists():
        return f"skipped: {ready} is absent; run `bash scripts/setup-vllm.sh` first"
    return None


@contextlib.contextmanager
def recording(base_url: str) -> Iterator[list[dict[str, Any]]]:
    """Record every chat body the pipeline's clients send to ``base_url`` (benchmark-only
    instrumentation)."""
    bodies: list[dict[str, Any]] = []
    original = llm_client.OpenAIChatClient._post

    async def post(
        self: llm_client.OpenAIChatClient, body: dict[str, Any], json_expected: bool
    ) -> Any:
        if self.base_url == base_url.rstrip("/"):
            bodies.append(body)
        return await original(self, body, json_expected)

    llm_client.OpenAIChatClient._post = post  # type: ignore[method-assign]
    try:
        yield bodies
    finally:
        llm_client.OpenAIChatClient._post = original  # type: ignore[method-assign]


def _server(root: Path, venv: Path) -> Any:
    from autodata.llm.vllm_server import ServerRegistry

    paths = Paths(models=REPO / ".cache" / "models", logs=root / "logs")
    return ServerRegistry(Vllm(python=venv / "bin" / "python"), paths)


def _settings(root: Path, vllm_url: str, served: str, scripted_url: str, k: int) -> Settings:
    """Weak, strong and judge on vLLM; challenger and verifier on the scripted server."""
    settings = common.bench_settings(root, vllm_url, k, model=served, loop=Loop(max_rounds=1, max_infra_retries=0))  # fmt: skip
    scripted = {"base_url": scripted_url, "model": "scripted", "max_concurrency": 64}
    models = settings.models.model_copy(update={
        r: settings.models.role(r).model_copy(update=scripted) for r in ("challenger", "verifier")
    })  # fmt: skip
    return settings.model_copy(update={"models": models})


def run(sources: int, concurrency: int, root: Path, harness: bool = True, venv: Path = VENV) -> dict[str, Any]:  # fmt: skip
    """Start the servers, run pipeline / bare / pipeline, return tokens/s and their ratio."""
    if (reason := skip_reason(venv)) is not None:
        return {"skipped": reason}
    k, frame = min(concurrency, CONCURRENCY), common.synthetic_sources(sources)
    with _server(root, venv) as registry, LoadServerProcess(LoadConfig(mode="loop")) as scripted, \
            common.prefect_session(harness):  # fmt: skip
        start = time.perf_counter()
        url, served = registry.url_for(EMBEDDED_MODEL)
        startup = time.perf_counter() - start
        with recording(url) as bodies:
            common.run_generate(_settings(root / "p1", url, served, scripted.base_url, k), frame)
        replay = bare.replay(url, bodies, k, "aiohttp")
        timed = common.run_generate(
            _settings(root / "p2", url, served, scripted.base_url, k), frame
        )
    on_vllm = {r: s for r, s in timed.per_role.items() if r in ("weak", "strong", "judge")}
    tokens_out = sum(s["tokens_out"] for s in on_vllm.values())
    pipeline_tps, bare_tps = tokens_out / timed.wall_s, replay.tokens_out / replay.wall_s
    return {"server_startup_s": startup, "concurrency": k, "sources": sources,
            "calls": sum(s["calls"] for s in on_vllm.values()),
            "calls_per_role": {r: s["calls"] for r, s in timed.per_role.items()},
            "bare_calls": replay.calls, "pipeline_tokens_out": tokens_out, "bare_tokens_out": replay.tokens_out,
            "pipeline_wall_s": timed.wall_s, "bare_wall_s": replay.wall_s,
            "pipeline_tokens_per_s": pipeline_tps, "bare_tokens_per_s": bare_tps,
            "ratio": pipeline_tps / bare_tps if bare_tps else None}  # fmt: skip
