"""Diagnosis behind the overhead benchmark's growth figure: does any cost grow faster than the work?

``python -m benchmarks.growth [SMALL LARGE] [--freeze]`` (default 1000 5000) runs the overhead
benchmark's generate flow (zero latency, one round) at two sizes in one process and prints, per
size, the pipeline's CPU per request and the CPU time and count of garbage collections per
generation (``gc.callbacks``, timed with ``time.process_time``, so other processes' load does not
enter), then large ÷ small for each beside the ratio of requests. ``--freeze`` also freezes the
survivors of every full collection (``gc.freeze``) during the runs: the variant measured and not
kept (benchmarks/README.md). A diagnostic, not one of the benchmarks: it writes no result file.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.loadserver import LoadConfig, LoadServerProcess
from benchmarks.overhead import _settings

K = 64


class _GcClock:
    """CPU seconds and counts of the collections of each generation while installed."""

    def __init__(self, freeze: bool) -> None:
        self.freeze, self.cpu_s, self.counts, self._start = freeze, 0.0, [0, 0, 0], 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.process_time()
            return
        self.cpu_s += time.process_time() - self._start
        self.counts[info["generation"]] += 1
        if self.freeze and info["generation"] == 2:
            gc.freeze()


def measure(sizes: list[int], freeze: bool = False) -> list[dict[str, Any]]:
    """One generate run per size (a warm-up first), each with its CPU and GC figures."""
    out = []
    with (
        tempfile.TemporaryDirectory(prefix="autodata-growth-") as tmp,
        LoadServerProcess(LoadConfig(mode="loop")) as srv,
        common.prefect_session(True),
    ):
        root = Path(tmp)
        common.run_generate(_settings(root / "warm", srv.base_url, K), common.synthetic_sources(3))
        for n in sizes:
            clock = _GcClock(freeze)
            gc.callbacks.append(clock)
            try:
                run = common.run_generate(_settings(root / f"n{n}", srv.base_url, K), common.synthetic_sources(n))  # fmt: skip
            finally:
                gc.callbacks.remove(clock)
                gc.unfreeze()
            out.append({"sources": n, "calls": run.calls, "cpu_s": run.cpu_s,
                        "cpu_ms_per_call": 1000 * run.cpu_s / max(run.calls, 1),
                        "gc_cpu_s": clock.cpu_s, "gc_counts": clock.counts})  # fmt: skip
    return out


def main(argv: list[str]) -> None:
    freeze = "--freeze" in argv
    sizes = [int(a) for a in argv if a != "--freeze"] or [1000, 5000]
    runs = measure(sizes, freeze)
    for r in runs:
        print(f"{r['sources']:>6} sources: {r['calls']} calls, CPU {r['cpu_s']:.1f} s "
              f"({r['cpu_ms_per_call']:.3f} ms/call), GC {r['gc_cpu_s']:.2f} s, collections {r['gc_counts']}")  # fmt: skip
    small, large = runs[0], runs[-1]
    ratio = lambda k: large[k] / small[k] if small[k] else float("nan")  # noqa: E731
    print(f"large / small: calls {ratio('calls'):.2f}, CPU {ratio('cpu_s'):.2f}, "
          f"CPU per call {ratio('cpu_ms_per_call'):.3f}, GC CPU {ratio('gc_cpu_s'):.2f}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
