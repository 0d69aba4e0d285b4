"""What every benchmark shares: the machine, synthetic sources, settings, one timed generate run,
the summary table and the result file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from autodata import schemas
from autodata.progress import Reporter
from autodata.settings import ROLES, Gate, Loop, Models, Paths, Rollouts, Settings

RESULTS = Path(__file__).resolve().parent / "results"
_PASSAGE = (
    "A supplier agreed to deliver {n} units of machine parts by the first of the month. The "
    "contract allowed the buyer to terminate if delivery was more than ten days late, provided "
    "written notice was given within five business days of the missed date. The parts arrived "
    "fourteen days late; the buyer sent notice by email on the third business day. The supplier "
    "argued that email was not written notice and that the delay was caused by a port strike. "
)


def machine() -> dict[str, Any]:
    """Where the figures came from: cores, memory, load average, CPU model, Python."""
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def synthetic_sources(n: int, chars: int = 2000) -> pl.DataFrame:
    """``n`` distinct legal passages of ~``chars`` characters (the ``sources`` contract)."""
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        text = " ".join(_PASSAGE.format(n=i + k) for k in range(chars // len(_PASSAGE) + 1))
        sid = f"{i:016x}"
        rows.append({"source_id": sid, "doc_id": sid, "section": 0, "domain": "legal",
                     "title": f"case {i}", "uri": f"bench://{i}", "text": text[:chars],
                     "n_chars": min(len(text), chars), "ingested_at": now})  # fmt: skip
    return schemas.check(pl.DataFrame(rows, schema=schemas.SOURCES), schemas.SOURCES, "sources")


def bench_settings(
    root: Path, base_url: str, concurrency: int, model: str = "scripted", **sections: Any
) -> Settings:
    """Settings whose roles all use ``base_url`` with ``concurrency`` requests in flight each;
    sampling settings are the recipe's defaults. The fresh re-scoring of accepted items is off
    unless ``rollouts`` is given, and the judge asks one call per criterion unless ``loop`` is
    given, and the gate is the fixed 3+3 one unless ``gate`` names a method: the throughput
    benchmarks measure the loop they were defined on (32 calls a source)."""
    sections.setdefault("rollouts", Rollouts(fresh=0))
    gate = sections.get("gate") or Gate()
    if "method" not in gate.model_fields_set:
        sections["gate"] = gate.model_copy(update={"method": "fixed"})
    loop = sections.get("loop") or Loop()
    if "judge_protocol" not in loop.model_fields_set:
        sections["loop"] = loop.model_copy(update={"judge_protocol": "per_criterion"})
    role = {"backend": "openai", "base_url": base_url, "model": model,
            "max_concurrency": concurrency, "timeout_s": 600.0}  # fmt: skip
    defaults = Models()  # the recipe's sampling settings per role (max_tokens, temperature, ...)
    models = Models(**{r: defaults.role(r).model_copy(update=role) for r in ROLES})
    paths = Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})
    return Settings(models=models, paths=paths, **sections)


@dataclass
class RunStats:
    """One timed generate run: wall and pipeline-process CPU seconds, calls and tokens."""

    wall_s: float
    cpu_s: float
    calls: int
    tokens_in: int
    tokens_out: int
    per_role: dict[str, dict[str, int]]
    frames: dict[str, pl.DataFrame]

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_s / max(self.calls, 1)


def run_generate(settings: Settings, sources: pl.DataFrame) -> RunStats:
    """Run the real generate stage (Prefect flow) once, timed; its cache starts empty."""
    from flows.generate import generate_flow

    shutil.rmtree(settings.paths.cache, ignore_errors=True)
    shutil.rmtree(settings.paths.interim, ignore_errors=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    frames = asyncio.run(generate_flow(settings, sources, Reporter(quiet=True)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    per_role = json.loads(settings.paths.calls_file.read_text())
    total = {k: sum(r[k] for r in per_role.values()) for k in ("calls", "tokens_in", "tokens_out")}
    return RunStats(wall, cpu, total["calls"], total["tokens_in"], total["tokens_out"], per_role, frames)  # fmt: skip


@contextlib.contextmanager
def prefect_session(use_harness: bool = True) -> Iterator[float]:
    """A temporary Prefect server for the benchmark; yields its startup seconds (0 if reused)."""
    if not use_harness:
        yield 0.0
        return
    from prefect.testing.utilities import prefect_test_harness

    start = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        yield time.perf_counter() - start


def show(title: str, rows: list[tuple[str, Any]], console: Console | None = None) -> None:
    """Print the one summary table of a benchmark."""
    table = Table("figure", "value", title=title)
    for name, value in rows:
        table.add_row(name, f"{value:.3f}" if isinstance(value, float) else str(value))
    (console or Console()).print(table)


def write_result(name: str, payload: dict[str, Any], out_dir: Path = RESULTS) -> Path:
    """Write ``<out_dir>/<name>.json``; ``payload`` must hold ``ratio`` and the ``machine`` as
    it was before the run (the load average after the run is added here)."""
    missing = {"ratio", "machine"} - payload.keys()
    if missing:
        raise ValueError(f"benchmark {name}: the result lacks {sorted(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    after = [round(x, 2) for x in os.getloadavg()]
    target = out_dir / f"{name}.json"
    body = {"benchmark": name, **payload, "loadavg_after": after}
    target.write_text(json.dumps(body, indent=2, default=str) + "\n")
    return target
