"""Saturation: does the generate stage keep K requests in flight?

The load server (its own process) answers every request after ``latency + per_token × tokens``.
With K slots per role, the fastest the round can go is the ideal time
``(max(S_challenger, S_verifier) + S_weak + S_judge + S_strong) / K``, where ``S_role`` is the
summed service time of that role's calls (``calls × latency + tokens_out × per_token``); the
challenger and verifier are separate clients and overlap, every other stage runs one role. With
``per_token = 0`` and no verifier overlap this is exactly the bound K / latency requests/s.

Headline ``ratio`` = achieved requests/s ÷ that bound = ideal time ÷ measured wall time
(target ≥ 0.95). ``--vllm`` adds the same question against the real vLLM CPU server
(``benchmarks/saturation_vllm.py``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodata.settings import Loop
from benchmarks import common
from benchmarks.loadserver import LoadConfig, LoadServerProcess


@dataclass(frozen=True)
class Options:
    sources: int = 2000
    concurrency: int = 64
    latency_s: float = 0.2
    per_token_s: float = 0.0
    vllm: bool = False
    vllm_sources: int = 4
    vllm_env: str = ".venv-vllm"

    @staticmethod
    def quick(**over: Any) -> Options:
        return Options(**({"sources": 200} | over))


def ideal_seconds(per_role: dict[str, dict[str, int]], k: int, latency_s: float, per_token_s: float) -> float:  # fmt: skip
    """The shortest possible wall time of the round at ``k`` slots per role (module docstring)."""
    service = {role: s["calls"] * latency_s + s["tokens_out"] * per_token_s for role, s in per_role.items()}  # fmt: skip
    overlapped = max(service.get("challenger", 0.0), service.get("verifier", 0.0))
    rest = sum(v for role, v in service.items() if role not in ("challenger", "verifier"))
    return (overlapped + rest) / k


def _load_run(opts: Options, root: Path, harness: bool) -> dict[str, Any]:
    config = LoadConfig(mode="loop", latency_s=opts.latency_s, per_token_s=opts.per_token_s)
    loop = Loop(max_rounds=1, max_infra_retries=0)
    with LoadServerProcess(config) as srv, common.prefect_session(harness) as startup_s:
        warm = common.bench_settings(root / "warm", srv.base_url, opts.concurrency, loop=loop)
        common.run_generate(warm, common.synthetic_sources(2))
        settings = common.bench_settings(root / "run", srv.base_url, opts.concurrency, loop=loop)
        run = common.run_generate(settings, common.synthetic_sources(opts.sources))
    ideal = ideal_seconds(run.per_role, opts.concurrency, opts.latency_s, opts.per_token_s)
    return {"prefect_startup_s": startup_s, "calls": run.calls, "wall_s": run.wall_s,
            "cpu_ms_per_call": run.cpu_ms_per_call, "requests_per_s": run.calls / run.wall_s,
            "bound_requests_per_s": run.calls / ideal, "k_over_latency": opts.concurrency / opts.latency_s if opts.latency_s else None,
            "ideal_s": ideal, "ratio": ideal / run.wall_s,
            "per_role_calls": {r: s["calls"] for r, s in run.per_role.items()}}  # fmt: skip


def run(opts: Options, *, harness: bool = True) -> dict[str, Any]:
    """Measure and return the result (``ratio`` = achieved / bound on the load server)."""
    result: dict[str, Any] = {"machine": common.machine(), "options": opts.__dict__, "cache": "on, fresh directory per run"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="autodata-bench-") as tmp:
        result["load_server"] = _load_run(opts, Path(tmp), harness)
        if opts.vllm:
            from benchmarks import saturation_vllm

            venv = saturation_vllm.REPO / opts.vllm_env
            result["vllm"] = saturation_vllm.run(opts.vllm_sources, opts.concurrency, Path(tmp) / "vllm", harness, venv)  # fmt: skip
    result["ratio"] = result["load_server"]["ratio"]
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table."""
    o, r = result["options"], result["load_server"]
    out: list[tuple[str, Any]] = [
        ("sources / K / latency s / per-token s", f"{o['sources']} / {o['concurrency']} / {o['latency_s']} / {o['per_token_s']}"),
        ("calls", r["calls"]), ("wall s", r["wall_s"]), ("ideal s", r["ideal_s"]),
        ("achieved requests/s", r["requests_per_s"]), ("bound requests/s", r["bound_requests_per_s"]),
        ("pipeline CPU ms/call", r["cpu_ms_per_call"]),
        ("ratio: achieved / bound (target ≥ 0.95)", r["ratio"]),
    ]  # fmt: skip
    v = result.get("vllm")
    if v is not None:
        out += [("vLLM", v.get("skipped", ""))] if "skipped" in v else [
            ("vLLM pipeline tokens/s", v["pipeline_tokens_per_s"]),
            ("vLLM bare-client tokens/s", v["bare_tokens_per_s"]),
            ("vLLM ratio: pipeline / bare", v["ratio"]),
        ]  # fmt: skip
    return out
