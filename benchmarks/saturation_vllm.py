"""Saturation against the real vLLM CPU server: the pipeline's tokens/s over a bare client's.

One managed server (``ServerRegistry``, the embedded model) serves three runs on the same prompts:
the generate stage once to record every request body it sends, a bare asyncio client replaying
those bodies at the same concurrency, then the generate stage again (fresh cache), so both timed
runs meet the same warm server (vLLM's prefix cache included). Tokens/s = completion tokens ÷
wall seconds. Roles reach the server as ``backend: openai``, so requests carry no x-guidance
hints (the managed server already disables JSON whitespace).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autodata.llm import client as llm_client
from autodata.settings import EMBEDDED_MODEL, Loop, Paths, Vllm
from benchmarks import bare, common
from benchmarks.loadserver import REPO

VENV = REPO / ".venv-vllm"
CONCURRENCY = 8  # vLLM on 2 CPU cores: more only queues inside the server


def skip_reason(venv: Path = VENV) -> str | None:
    """Why the vLLM part cannot run with the environment ``venv``, or None."""
    ready = venv / ".autodata-ready"
    if not ready.exists():
        return f"skipped: {ready} is absent; run `bash scripts/setup-vllm.sh` first"
    return None


@contextlib.contextmanager
def recording() -> Iterator[list[dict[str, Any]]]:
    """Record every chat body the pipeline's clients send (benchmark-only instrumentation)."""
    bodies: list[dict[str, Any]] = []
    original = llm_client.OpenAIChatClient._post

    async def post(self: llm_client.OpenAIChatClient, body: dict[str, Any]) -> dict[str, Any]:
        bodies.append(body)
        return await original(self, body)

    llm_client.OpenAIChatClient._post = post  # type: ignore[method-assign]
    try:
        yield bodies
    finally:
        llm_client.OpenAIChatClient._post = original  # type: ignore[method-assign]


def _server(root: Path, venv: Path) -> Any:
    from autodata.llm.vllm_server import ServerRegistry

    paths = Paths(models=REPO / ".cache" / "models", logs=root / "logs")
    return ServerRegistry(Vllm(python=venv / "bin" / "python"), paths)


def run(sources: int, concurrency: int, root: Path, harness: bool = True, venv: Path = VENV) -> dict[str, Any]:  # fmt: skip
    """Start the server, run pipeline / bare / pipeline, return tokens/s and their ratio."""
    if (reason := skip_reason(venv)) is not None:
        return {"skipped": reason}
    k = min(concurrency, CONCURRENCY)
    loop = Loop(max_rounds=1, max_infra_retries=0)
    frame = common.synthetic_sources(sources)
    with _server(root, venv) as registry, common.prefect_session(harness):
        start = time.perf_counter()
        url, served = registry.url_for(EMBEDDED_MODEL)
        startup = time.perf_counter() - start
        settings = common.bench_settings(root / "p1", url, k, model=served, loop=loop)
        with recording() as bodies:
            common.run_generate(settings, frame)
        replay = bare.replay(url, bodies, k, "aiohttp")
        settings = common.bench_settings(root / "p2", url, k, model=served, loop=loop)
        timed = common.run_generate(settings, frame)
    pipeline_tps, bare_tps = timed.tokens_out / timed.wall_s, replay.tokens_out / replay.wall_s
    return {"server_startup_s": startup, "concurrency": k, "sources": sources, "calls": timed.calls,
            "bare_calls": replay.calls, "pipeline_tokens_out": timed.tokens_out, "bare_tokens_out": replay.tokens_out,
            "pipeline_wall_s": timed.wall_s, "bare_wall_s": replay.wall_s,
            "pipeline_tokens_per_s": pipeline_tps, "bare_tokens_per_s": bare_tps,
            "ratio": pipeline_tps / bare_tps if bare_tps else None}  # fmt: skip
