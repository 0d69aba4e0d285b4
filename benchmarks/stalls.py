"""Diagnosis behind the saturation figures: where does a round lose its slots?

``python -m benchmarks.stalls [SOURCES]`` (default 500) runs the saturation setup (K 64, 0.2 s per
request, one round) once and prints: wall vs the ideal time, full garbage collections (count,
total, longest), event-loop lags from a 5 ms probe (p50/p99/max and every one over 20 ms), the
stage enter/exit times, and the idle slot-seconds (÷ K) per stage from the load server's
in-flight timeline. A diagnostic, not one of the three benchmarks: it writes no result file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from autodata.progress import Reporter
from autodata.settings import Loop
from benchmarks import common
from benchmarks.loadserver import LoadConfig, LoadServerProcess
from benchmarks.saturation import ideal_seconds

K, LATENCY_S, PROBE_S = 64, 0.2, 0.005


class _Marking(Reporter):
    """Records when each stage starts and ends."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.marks: list[tuple[float, str]] = []

    @contextlib.contextmanager
    def stage(self, label: str, total: int) -> Iterator[Callable[[], None]]:
        self.marks.append((time.monotonic(), "enter " + label))
        yield lambda: None
        self.marks.append((time.monotonic(), "exit  " + label))


def _full_collections() -> tuple[list[float], Callable[[str, dict[str, Any]], None]]:
    durations: list[float] = []
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            durations.append(time.perf_counter() - started[0])

    return durations, callback


async def _probed(run: Any, lags: list[tuple[float, float]]) -> None:
    async def probe() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            lags.append((time.monotonic(), time.perf_counter() - before - PROBE_S))

    task = asyncio.create_task(probe())
    await run
    task.cancel()


def main(sources: int = 500) -> None:
    """Run once and print the diagnosis (module docstring)."""
    from flows.generate import generate_flow

    reporter, lags = _Marking(), list[tuple[float, float]]()
    gcs, callback = _full_collections()
    with tempfile.TemporaryDirectory() as tmp, LoadServerProcess(LoadConfig(latency_s=LATENCY_S)) as srv, common.prefect_session():  # fmt: skip
        loop = Loop(max_rounds=1, max_infra_retries=0)
        common.run_generate(common.bench_settings(Path(tmp) / "warm", srv.base_url, K, loop=loop), common.synthetic_sources(2))  # fmt: skip
        settings = common.bench_settings(Path(tmp) / "run", srv.base_url, K, loop=loop)
        gc.callbacks.append(callback)
        t0 = time.monotonic()
        asyncio.run(_probed(generate_flow(settings, common.synthetic_sources(sources), reporter), lags))  # fmt: skip
        t1 = time.monotonic()
        gc.callbacks.remove(callback)
        timeline = srv.in_flight(0.05)
        per_role = json.loads(settings.paths.calls_file.read_text())
    ideal = ideal_seconds(per_role, K, LATENCY_S, 0.0)
    print(f"wall {t1 - t0:.2f} s, ideal {ideal:.2f} s, ratio {ideal / (t1 - t0):.3f}")
    print(f"full collections: {len(gcs)}, total {sum(gcs):.3f} s, longest {1000 * max(gcs, default=0):.0f} ms")  # fmt: skip
    values = sorted(v for _, v in lags)
    p50, p99 = (1000 * values[int(q * (len(values) - 1))] for q in (0.5, 0.99))
    print(f"event-loop lag: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {1000 * values[-1]:.0f} ms")
    for at, lag in lags:
        if lag > 0.02:
            print(f"  stall of {1000 * lag:.0f} ms at {at - t0:.2f} s")
    _idle_per_stage(timeline, reporter.marks, t0, t1)


def _idle_per_stage(timeline: dict[str, Any], marks: list[tuple[float, str]], t0: float, t1: float) -> None:  # fmt: skip
    step = timeline["bucket_s"]
    busy = [(timeline["start"] + i * step - t0, x) for i, x in enumerate(timeline["mean"])]
    busy = [(t, x) for t, x in busy if t >= 0]  # the timeline also covers the warm-up run
    for at, what in marks:
        print(f"{at - t0:8.2f} s  {what}")
    edges = [0.0] + [at - t0 for at, _ in marks] + [t1 - t0]
    for lo, hi in itertools.pairwise(edges):
        idle = sum((K - min(x, K)) * step for t, x in busy if lo <= t < hi) / K
        if idle > 0.05:
            print(f"  {lo:8.2f}–{hi:8.2f} s: {idle:.2f} s of idle slots (÷ K)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
