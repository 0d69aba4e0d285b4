"""Meta-optimization in simulation: does the optimizer raise the validation pass rate, refuse
harmful and forbidden edits, and leave the measurement alone?

The real optimizer (``flows.optimize.optimize_flow``: the real loop per evaluation, the call
cache on) runs against the load server's ``optimize`` mode (``benchmarks/sim_optimize.py``):
items written under good rules are more often in the zone, harmful rules make them easy, and a
scripted analyzer and editor propose good, harmful, forbidden, template-breaking, oversized and
neutral edits. Headline ``ratio`` = best validation pass rate ÷ the seed recipe's.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodata.progress import Reporter
from autodata.settings import OPTIMIZER_ROLES, ROLES, Models, Optimize, Paths, Settings
from benchmarks import common, sim_optimize
from benchmarks.loadserver import LoadConfig, LoadServerProcess
from tasks import optimize_split, optimize_store
from tasks.optimize_surface import TARGETS, measurement_hash, surface_of


@dataclass(frozen=True)
class Options:
    sources: int = 90
    iterations: int = 30
    minibatch: int = 8
    repeats: int = 2
    max_rounds: int = 2
    concurrency: int = 32
    seed: int = 0

    @staticmethod
    def quick() -> Options:
        return Options(sources=60, iterations=12, repeats=2)


def bench_settings(root: Path, base_url: str, opts: Options) -> Settings:
    """Every role (the optimizer's too) on the load server; paths under ``root``."""
    role = {"backend": "openai", "base_url": base_url, "model": "scripted",
            "max_concurrency": opts.concurrency, "timeout_s": 600.0}  # fmt: skip
    defaults = Models()
    models = Models(**{r: defaults.role(r).model_copy(update=role) for r in (*ROLES, *OPTIMIZER_ROLES)})  # fmt: skip
    paths = Paths(**{name: root / str(value) for name, value in Paths().model_dump().items()})
    optimize = Optimize(iterations=opts.iterations, minibatch=opts.minibatch, repeats=opts.repeats,
                        max_rounds=opts.max_rounds, seed=opts.seed)  # fmt: skip
    return Settings(models=models, paths=paths, optimize=optimize)


def run(opts: Options, *, harness: bool = True, quiet: bool = True) -> dict[str, Any]:
    """Optimize once in a fresh directory; return the figures (``ratio`` = best ÷ seed)."""
    from flows.optimize import eval_settings, optimize_flow

    result: dict[str, Any] = {"machine": common.machine(), "options": opts.__dict__}
    sources = common.synthetic_sources(opts.sources)
    with (
        tempfile.TemporaryDirectory(prefix="autodata-bench-") as tmp,
        LoadServerProcess(LoadConfig(mode="optimize", sim_seed=opts.seed)) as srv,
        common.prefect_session(harness),
    ):
        settings = bench_settings(Path(tmp), srv.base_url, opts)
        wall = time.perf_counter()
        summary = asyncio.run(optimize_flow(settings, sources, Reporter(quiet=quiet)))
        result["wall_s"] = round(time.perf_counter() - wall, 1)
        split = optimize_store.stored_split(settings.paths)
        assert split is not None
        validation = optimize_split.ids_of(split, optimize_split.VALIDATION, sources["source_id"].to_list())  # fmt: skip
        seed_eval = eval_settings(settings, surface_of(settings), 0, "check")
        state = optimize_store.read_state(settings.paths)
        assert state is not None
        result["measurement_unchanged"] = (
            measurement_hash(seed_eval, validation) == state.measurement
        )
        result |= _variant_figures(optimize_store.read_variants(settings.paths))
        result["history_steps"] = _steps(optimize_store.history_path(settings.paths))
    seed, best = summary["seed_score"], summary["best_score"]
    return result | summary | {"ratio": best / seed if seed else None}


def _variant_figures(variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which rules each evaluated variant carries, and what became of the harmful ones."""

    def rules(v: dict[str, Any]) -> list[str]:
        return sim_optimize.rules_in(v["surface"]["challenger_system"])

    harmful = [v for v in variants.values() if set(rules(v)) & set(sim_optimize.HARMFUL)]
    kept = [v for v in variants.values() if v["kept"]]
    best = max(kept, key=lambda v: v["validation_score"])
    return {
        "harmful_evaluated": len(harmful),
        "harmful_kept": sum(v["kept"] for v in harmful),
        "off_surface_variants": sum(set(v["surface"]) != set(TARGETS) for v in variants.values()),
        "best_rules": rules(best),
        "best_diff": best.get("diff", ""),
    }


def _steps(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        step = json.loads(line)["step"]
        counts[step] = counts.get(step, 0) + 1
    return counts


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table."""
    return [
        ("validation pass rate: seed → best", f"{result['seed_score']:.3f} → {result['best_score']:.3f}"),
        ("iterations / children evaluated / kept", f"{result['iterations']} / {result['evaluated_variants']} / {result['accepted_variants']}"),
        ("refused before evaluation, by kind", ", ".join(f"{k} {v}" for k, v in result["rejected"].items()) or "none"),
        ("harmful variants evaluated / kept", f"{result['harmful_evaluated']} / {result['harmful_kept']}"),
        ("rules of the best variant", ", ".join(result["best_rules"]) or "none"),
        ("measurement unchanged", result["measurement_unchanged"]),
        ("model calls / tokens", f"{result['calls']} / {result['tokens']}"),
        ("wall seconds", result["wall_s"]),
        ("ratio: best ÷ seed", result["ratio"]),
    ]  # fmt: skip
