"""Whole process: ``autodata run`` from launch to exit on a small job, against a bare asyncio
client sending as many requests to the same load server.

Every measured thing is a new process started here, timed from launch to exit, each against its
own load server (``loop`` mode, ``latency`` per reply, its own process), which reports when the
first chat request arrived and when the last reply left (``time.monotonic``, one clock for every
process). Four arms, interleaved ``repeats`` times so that a change of machine load touches each:

- ``fresh``: the first ``autodata run`` of a new project (no Prefect database yet: its one-time
  set-up, ~7 s of migrations here, is paid here);
- ``setup``: a rerun of a set-up project (its Prefect database kept; outputs, interim tables and
  the call cache removed first, so it makes every call again);
- ``configured``: the same with ``PREFECT_API_URL`` at a Prefect server already running (started
  once, before timing): what the run costs with no server to start;
- ``bare``: ``python -m benchmarks.bare`` posting the same number of judge-shaped requests with
  the same concurrency (aiohttp): interpreter, imports and requests, nothing else.

``prefect_s`` = first request of ``setup`` − first request of ``configured`` (medians): the wall
that starting Prefect's server and opening its database add before the first request of a
set-up project (target ≤ 2 s); ``fresh_extra_s`` = first request of ``fresh`` − of ``setup``: a
new project's one-time set-up. Headline ``ratio`` = wall(setup) ÷ wall(bare).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodata._killpoints import ENV as KILL_ENV
from autodata.prefect_api import TemporaryServer
from autodata.settings import ROLES, Paths
from benchmarks import common
from benchmarks.loadserver import REPO, LoadConfig, LoadServerProcess

ARMS = ("fresh", "setup", "configured", "bare")
PARAMS = "loop:\n  max_rounds: 1\n  max_infra_retries: 0\n"
_KEEP = {"params.yaml", "data", ".prefect"}  # what a rerun of a set-up project keeps


@dataclass(frozen=True)
class Options:
    sources: int = 100  # ~1,000 requests (10 a source with the default judge protocol)
    concurrency: int = 64
    latency_s: float = 0.2
    repeats: int = 3

    @staticmethod
    def quick() -> Options:
        return Options(sources=4, repeats=1)


_NOUNS = (
    "buyer seller supplier tenant landlord court notice contract delivery payment invoice clause "
    "warranty damages breach remedy lease term deposit arbitration statute deadline shipment "
    "insurer claim policy premium liability defect repair refund agent principal estate trust "
    "heir partner share dividend loan interest collateral guarantor creditor debtor"
)
_VERBS = "sent received signed disputed accepted rejected cured waived owed paid claimed filed"


def passage(i: int, chars: int = 2000) -> str:
    """A text of about ``chars`` characters, distinct per ``i`` (no near-duplicate of another:
    ingest would keep only one of the benchmark's usual passages, which differ in numbers)."""
    rng, nouns, verbs = random.Random(i), _NOUNS.split(), _VERBS.split()
    sentences: list[str] = []
    while sum(len(s) for s in sentences) < chars:
        a, b, c = rng.sample(nouns, 3)
        sentences.append(f"The {a} {rng.choice(verbs)} the {b} of the {c} on day {rng.randint(1, 90)}. ")  # fmt: skip
    return "".join(sentences)[:chars]


def write_sources(root: Path, n: int) -> None:
    """``n`` distinct passages as markdown files in ``root``'s sources folder."""
    folder = root / Paths().sources
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"case-{i:05d}.md").write_text(f"# Case {i}\n\n{passage(i)}\n")


def new_project(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(PARAMS)
    write_sources(root, n)
    return root


def reset(root: Path) -> None:
    """Everything a run wrote, except Prefect's home and the sources, removed."""
    for path in root.iterdir():
        if path.name not in _KEEP:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    sources = (root / Paths().sources).resolve()
    for path in (root / "data").iterdir():
        if path.resolve() != sources:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def run_env(base_url: str, k: int, prefect_url: str = "") -> dict[str, str]:
    """This environment, every role on ``base_url`` with ``k`` in flight, Prefect's home left to
    the project (or ``prefect_url`` as a configured server)."""
    env = {k_: v for k_, v in os.environ.items() if k_ not in ("PREFECT_API_URL", "PREFECT_HOME", KILL_ENV)}  # fmt: skip
    for role in ROLES:
        prefix = f"AUTODATA_MODELS__{role.upper()}__"
        env |= {prefix + "BACKEND": "openai", prefix + "BASE_URL": base_url,
                prefix + "MODEL": "scripted", prefix + "MAX_CONCURRENCY": str(k)}  # fmt: skip
    if prefect_url:
        env["PREFECT_API_URL"] = prefect_url
    return env


def timed(argv: list[str], cwd: Path, env: dict[str, str], srv: LoadServerProcess) -> dict[str, Any]:  # fmt: skip
    """Run ``argv`` to its end; its wall, and when ``srv`` saw its first request and last reply."""
    load = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} exited {proc.returncode}: {proc.stderr[-3000:]}")
    stats = srv.stats()
    first, last = stats["first_arrival"], stats["last_reply"]
    return {"wall_s": wall, "first_request_s": first - start, "last_reply_s": last - start,
            "after_last_reply_s": wall - (last - start), "requests": stats["chat_requests"],
            "load_1m_before": round(load, 2)}  # fmt: skip


def pipeline(root: Path, opts: Options, prefect_url: str = "") -> dict[str, Any]:
    """One ``autodata run --quiet`` in ``root``, timed against its own load server."""
    argv = [str(Path(sys.executable).parent / "autodata"), "--params", "params.yaml", "run", "--quiet"]  # fmt: skip
    with LoadServerProcess(LoadConfig(mode="loop", latency_s=opts.latency_s)) as srv:
        env = run_env(srv.base_url, opts.concurrency, prefect_url)
        return timed(argv, root, env, srv)


def bare(calls: int, opts: Options) -> dict[str, Any]:
    """``python -m benchmarks.bare`` with ``calls`` requests, timed against its own load server."""
    with LoadServerProcess(LoadConfig(mode="loop", latency_s=opts.latency_s)) as srv:
        argv = [sys.executable, "-m", "benchmarks.bare", srv.base_url, str(calls), str(opts.concurrency)]  # fmt: skip
        return timed(argv, REPO, dict(os.environ), srv)


def _repeat(i: int, tmp: Path, opts: Options, prefect_url: str) -> list[dict[str, Any]]:
    """One pass over the arms; the first pass also makes the set-up and configured projects."""
    setup, configured = tmp / "setup", tmp / "configured"
    runs = [{"arm": "fresh"} | pipeline(new_project(tmp / f"fresh-{i}", opts.sources), opts)]
    if i == 0:
        pipeline(new_project(setup, opts.sources), opts)  # its set-up run (not timed)
        pipeline(new_project(configured, opts.sources), opts, prefect_url)  # warm-up
    for arm, root, url in (("setup", setup, ""), ("configured", configured, prefect_url)):
        reset(root)
        runs.append({"arm": arm} | pipeline(root, opts, url))
    runs.append({"arm": "bare"} | bare(runs[1]["requests"], opts))
    return [r | {"repeat": i} for r in runs]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per arm, and the headline figures (module docstring)."""
    keys = ("wall_s", "first_request_s", "last_reply_s", "after_last_reply_s")
    arms = {arm: {k: statistics.median(r[k] for r in runs if r["arm"] == arm) for k in keys} for arm in ARMS}  # fmt: skip
    for arm in ARMS:
        arms[arm]["requests"] = next(r["requests"] for r in runs if r["arm"] == arm)
    first = {arm: arms[arm]["first_request_s"] for arm in ARMS}
    return {"arms": arms, "prefect_s": first["setup"] - first["configured"],
            "fresh_extra_s": first["fresh"] - first["setup"],
            "ratio": arms["setup"]["wall_s"] / arms["bare"]["wall_s"]}  # fmt: skip


def run(opts: Options) -> dict[str, Any]:
    """Measure and return the result (``ratio`` = wall of a set-up project's run ÷ bare)."""
    result: dict[str, Any] = {"machine": common.machine(), "options": opts.__dict__}
    with tempfile.TemporaryDirectory(prefix="autodata-bench-process-") as name:
        tmp = Path(name)
        home = {"PREFECT_HOME": str(tmp / "configured-prefect-home")}
        server = TemporaryServer(tmp / "configured-prefect.log", environ=os.environ | home)
        server.start()
        try:
            runs = [r for i in range(opts.repeats) for r in _repeat(i, tmp, opts, server.api_url)]
        finally:
            server.stop()
    return result | {"runs": runs} | summarise(runs)


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table."""
    o, a = result["options"], result["arms"]
    out: list[tuple[str, Any]] = [
        ("sources / K / latency s / repeats", f"{o['sources']} / {o['concurrency']} / {o['latency_s']} / {o['repeats']}"),
        ("requests (autodata / bare)", f"{a['setup']['requests']} / {a['bare']['requests']}"),
    ]  # fmt: skip
    for arm in ARMS:
        r = a[arm]
        out.append((f"{arm}: wall / first request / last reply s",
                    f"{r['wall_s']:.2f} / {r['first_request_s']:.2f} / {r['last_reply_s']:.2f}"))  # fmt: skip
    loads = [r["load_1m_before"] for r in result["runs"]]
    out += [("load average (1 min) before the runs", f"{min(loads):.2f}–{max(loads):.2f}"),
            ("Prefect before the first request, set-up project s (target ≤ 2)", result["prefect_s"]),
            ("a fresh project's one-time set-up s", result["fresh_extra_s"]),
            ("ratio: wall setup / wall bare", result["ratio"])]  # fmt: skip
    return out
