"""Quality of the loop on real models: ``autodata bench quality``.

Runs the real pipeline (ingest → generate → accept → validate → export, the flow of
``autodata run``, with its temporary Prefect server and managed vLLM servers) with the models
the settings name (``--params``; by default the embedded ones), on a sources folder, in a work
directory of its own: every path of the run (tables, metrics, call cache, logs) lives there,
except the converted embedded models, which are shared. The call cache starts empty, so every
call is made. The figures are read back from what the run wrote, exactly as from any finished
project (``--from-run``): the final ``rounds`` table (a decision per candidate, its control gap
and scores), the ``challenges`` table (quality verifier), ``metrics/generate.json`` (calls and
tokens per role) and the recipe snapshot (model per role).

- ``qv_pass_rate``: items that passed the quality verifier ÷ items the challenger wrote (its
  call succeeded);
- ``control_pass_share``: candidates whose judge passed its controls (decision other than
  ``judge_unreliable``) ÷ candidates whose controls were graded and decided on (a control gap
  recorded, decision not ``infra_error``); ``control_gap_mean`` over the same candidates;
- ``calls_per_accepted`` / ``tokens_per_accepted``: the run's logical model calls (HTTP requests
  − retries + cache hits, as ``metrics/generate.json`` counts them) and tokens in + out, every
  role (the fresh re-scoring of accepted items, ``rollouts.fresh``, included), ÷ accepted (null
  when nothing was accepted);
- ``accepted_weak_mean`` / ``accepted_strong_mean`` / ``accepted_gap``: means over accepted items.

Headline ``ratio``: accepted ÷ candidates.

``--gate both`` runs the loop twice on the same sources, the fixed gate and then the sequential
one (issue 10), each in a project of its own (``<workdir>/fixed``, ``<workdir>/sequential``) but
with one shared call cache: the second arm's challenger, verifier and every rollout the first arm
already drew (same request, same seed) are cache hits, so both arms grade the same first-round
items and the comparison is paired. Calls are counted logically (cache hits included), so each
arm's calls per accepted is what it would cost alone; its wall time is not (``cache_hits`` says
how much the second arm reused). Headline ``ratio`` then: sequential ÷ fixed calls per accepted.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from autodata.errors import ConfigError, ValidationFailed
from autodata.progress import Reporter
from autodata.settings import ROLES, Paths, Settings
from benchmarks import common

GATES = ("fixed", "sequential")  # the order of --gate both: the sequential arm reuses fixed's calls
ROUNDS_COLUMNS = ("candidate_id", "decision", "control_gap", "weak_mean", "strong_mean", "gap")
CHALLENGES_COLUMNS = ("candidate_id", "qv_passed", "call_status")


@dataclass(frozen=True)
class Options:
    sources: Path = Path("data/sources")
    limit: int | None = None  # files of the folder, spread over its sub-folders
    max_rounds: int | None = None  # None: the settings' loop.max_rounds
    gate: str | None = None  # fixed | sequential | both; None: the settings' gate.method
    workdir: Path | None = None  # None: a new temporary directory, kept after the run


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(frame: pl.DataFrame, column: str) -> float | None:
    value = frame[column].mean() if frame.height else None
    return round(float(value), 4) if isinstance(value, int | float) else None


def _logical(stats: dict[str, Any]) -> int:
    """A role's model calls as ``metrics/generate.json`` counts them: HTTP requests − retries +
    cache hits."""
    return int(stats.get("calls", 0) - stats.get("retries", 0) + stats.get("cache_hits", 0))


def figures(
    rounds: pl.DataFrame,
    challenges: pl.DataFrame,
    per_role: dict[str, dict[str, Any]],
    models: dict[str, str],
) -> dict[str, Any]:
    """The quality figures of one run, from its tables (module doc); JSON-ready."""
    written = challenges.filter(pl.col("call_status") == "ok")
    qv_passed = int(written["qv_passed"].fill_null(False).sum())
    graded = rounds.filter(
        pl.col("control_gap").is_not_null() & (pl.col("decision") != "infra_error")
    )
    passed = graded.filter(pl.col("decision") != "judge_unreliable").height
    accepted = rounds.filter(pl.col("decision") == "accepted")
    calls = sum(_logical(r) for r in per_role.values())
    hits = sum(int(r.get("cache_hits", 0)) for r in per_role.values())
    tokens = sum(r.get("tokens_in", 0) + r.get("tokens_out", 0) for r in per_role.values())
    return {
        "candidates": rounds.height, "accepted": accepted.height,
        "decisions": dict(sorted(rounds["decision"].value_counts().rows())),
        "items_written": written.height, "qv_passed": qv_passed,
        "qv_pass_rate": _ratio(qv_passed, written.height),
        "controls_graded": graded.height, "controls_passed": passed,
        "control_pass_share": _ratio(passed, graded.height),
        "control_gap_mean": _mean(graded, "control_gap"),
        "accepted_weak_mean": _mean(accepted, "weak_mean"),
        "accepted_strong_mean": _mean(accepted, "strong_mean"),
        "accepted_gap": _mean(accepted, "gap"),
        "calls": calls, "tokens": tokens, "cache_hits": hits,
        "calls_per_accepted": _ratio(calls, accepted.height),
        "tokens_per_accepted": _ratio(tokens, accepted.height),
        "calls_per_role": {role: _logical(r) for role, r in sorted(per_role.items())},
        "models": models,
    }  # fmt: skip


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def read_run(paths: Paths) -> dict[str, Any]:
    """:func:`figures` of the run whose files ``paths`` name, plus its sources and gate method;
    raises :class:`ConfigError` when no finished run is there."""
    if not paths.rounds_table.is_file():
        raise ConfigError(
            f"{paths.rounds_table}: not found, so no finished run is there; run `autodata run` "
            "in that project first, or point --from-run at the directory it ran in"
        )
    rounds = pl.read_parquet(paths.rounds_table, columns=list(ROUNDS_COLUMNS))
    challenges = (
        pl.read_parquet(paths.challenges_table, columns=list(CHALLENGES_COLUMNS))
        if paths.challenges_table.is_file()
        else pl.DataFrame(schema={"qv_passed": pl.Boolean, "call_status": pl.String})
    )
    metrics, recipe = _json(paths.generate_metrics), _json(paths.recipe_snapshot)
    specs = recipe.get("models", {})
    models = {role: specs[role]["model"] for role in (*ROLES, *sorted(specs)) if role in specs}
    out = figures(rounds, challenges, metrics.get("llm", {}).get("per_role", {}), models)
    return out | {
        "sources": metrics.get("sources"),
        "gate_method": recipe.get("gate", {}).get("method"),
        "max_rounds": recipe.get("loop", {}).get("max_rounds"),
    }


def run_paths(settings: Settings, root: Path) -> Paths:
    """The paths of ``settings`` with every relative one under ``root`` (``--from-run``)."""
    fields = settings.paths.model_dump()
    return Paths(**{k: v if Path(v).is_absolute() else root / v for k, v in fields.items()})


def file_wall_s(paths: Paths) -> float | None:
    """Seconds from the sources table's last write (end of ingest) to ``metrics/generate.json``'s
    (end of accept): an estimate of a finished run's wall time without Prefect's startup, the
    ingest, validation and export."""
    if not (paths.sources_table.is_file() and paths.generate_metrics.is_file()):
        return None
    span = paths.generate_metrics.stat().st_mtime - paths.sources_table.stat().st_mtime
    return round(span, 1) if span >= 0 else None


def pick_sources(folder: Path, limit: int, target: Path, follow_links_outside: bool) -> int:
    """Copy ``limit`` files of ``folder`` into ``target``, taking each sub-folder's first file in
    turn (sorted by path), so a small sample still spans the domains; returns how many."""
    from tasks.ingest_files import list_sources

    files = [p for p in list_sources(folder, follow_links_outside)[0] if p.is_file()]
    seen: dict[str, int] = {}
    order = []
    for path in files:  # the k-th file of each sub-folder, for k = 0, 1, ...
        top = path.relative_to(folder).parts[0] if len(path.relative_to(folder).parts) > 1 else ""
        seen[top] = seen.get(top, -1) + 1
        order.append((seen[top], path))
    chosen = [p for _, p in sorted(order, key=lambda kp: kp[0])][:limit]
    for path in chosen:
        dest = target / path.relative_to(folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return len(chosen)


def _workdir(opts: Options) -> Path:
    if opts.workdir is None:
        return Path(tempfile.mkdtemp(prefix="autodata-bench-quality-"))
    if opts.workdir.exists() and any(opts.workdir.iterdir()):
        raise ConfigError(
            f"{opts.workdir}: not empty; the benchmark runs in a directory of its own with an "
            "empty call cache; pass a new or empty --workdir"
        )
    opts.workdir.mkdir(parents=True, exist_ok=True)
    return opts.workdir


def bench_settings(
    settings: Settings, opts: Options, root: Path, cache: Path | None = None
) -> Settings:
    """``settings`` run in ``root``: every path there (the default layout, never the project's
    own) but the converted models and, if given, the call ``cache``; the sources folder (or a
    copy of ``opts.limit`` of its files); ``loop.max_rounds`` and ``gate.method`` from ``opts``
    where given."""
    layout = {k: root / v for k, v in Paths().model_dump().items()}
    shared = {"models": settings.paths.models} | ({"cache": cache} if cache else {})
    paths = Paths(**layout).model_copy(update=shared)
    sources = opts.sources.resolve()
    if opts.limit is not None:
        sources = paths.sources
        pick_sources(opts.sources, opts.limit, sources, settings.ingest.follow_links_outside)
    update: dict[str, Any] = {"paths": paths.model_copy(update={"sources": sources})}
    if opts.max_rounds is not None:
        update["loop"] = settings.loop.model_copy(update={"max_rounds": opts.max_rounds})
    if opts.gate is not None:
        update["gate"] = settings.gate.model_copy(update={"method": opts.gate})
    return settings.model_copy(update=update)


def run(
    settings: Settings, opts: Options, reporter: Reporter, cache: Path | None = None
) -> dict[str, Any]:
    """Run the pipeline as ``autodata run`` does, timed, in a work directory; return the figures
    read from what it wrote. A failed validation is recorded, not raised: the tables are there.
    ``opts.gate == "both"``: :func:`run_both`. ``cache``: a call cache shared with another run."""
    from autodata.cli_guard import guarded
    from flows.pipeline import run_flow

    if not opts.sources.is_dir():
        raise ConfigError(f"{opts.sources}: not a directory; pass --sources DIR")
    if opts.gate == "both":
        if settings.loop.mode == "verifiable":
            raise ConfigError(
                "--gate both compares the rubric gates; with loop.mode verifiable both arms "
                "decide by the fixed rules: use --gate fixed, or loop.mode rubric"
            )
        return run_both(settings, opts, reporter)
    root = _workdir(opts)
    machine, run_settings = common.machine(), bench_settings(settings, opts, root, cache)
    validation, start = "passed", time.perf_counter()
    try:
        with guarded(run_settings, flows=True) as stop:
            stop.run(run_flow(run_settings, reporter))
    except ValidationFailed as exc:
        validation = f"failed: {exc}"
    wall = round(time.perf_counter() - start, 1)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
    found = read_run(run_settings.paths)
    return {"machine": machine, "options": options, "workdir": str(root), "wall_s": wall,
            "wall_from": "timed: the whole run, ingest to export, its servers' startup included",
            "validation": validation, **found, "ratio": _ratio(found["accepted"], found["candidates"])}  # fmt: skip


def run_both(settings: Settings, opts: Options, reporter: Reporter) -> dict[str, Any]:
    """Both gates side by side (module doc): ``{"arms": {"fixed": figures, "sequential":
    figures}, "ratio": sequential ÷ fixed calls per accepted (null if either accepted none)}``."""
    root = _workdir(opts)
    cache = root / "shared-llm-cache"
    arms = {
        gate: run(settings, replace(opts, gate=gate, workdir=root / gate), reporter, cache)
        for gate in GATES
    }
    per = [arms[g]["calls_per_accepted"] for g in GATES]
    options = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
    return {"machine": common.machine(), "options": options, "workdir": str(root),
            "cache": f"{cache}: shared; the sequential arm ran second",
            "arms": arms, "ratio": _ratio(per[1], per[0]) if None not in per else None}  # fmt: skip


def from_run(settings: Settings, root: Path, wall_s: float | None) -> dict[str, Any]:
    """The figures of a run that already finished in the project directory ``root`` (its paths
    as ``settings`` name them); ``wall_s`` as measured by the caller, else from file times."""
    paths = run_paths(settings, root)
    found = read_run(paths)
    wall_from = "given (--wall-s)" if wall_s is not None else (
        "estimate from file times: end of ingest to end of accept "
        "(without Prefect's startup, ingest, validation and export)"
    )  # fmt: skip
    wall = wall_s if wall_s is not None else file_wall_s(paths)
    return {"machine": common.machine(), "options": {"from_run": str(root)}, "workdir": str(root),
            "wall_s": wall, "wall_from": wall_from, "validation": None, **found,
            "ratio": _ratio(found["accepted"], found["candidates"])}  # fmt: skip


def rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The summary table (one column per gate for ``--gate both``)."""
    if "arms" in result:
        fixed, sequential = (rows(result["arms"][g]) for g in GATES)
        both = [
            (label, f"{a}  |  {b}") for (label, a), (_, b) in zip(fixed, sequential, strict=True)
        ]
        return [("arms", "fixed  |  sequential"), *both,
                ("ratio: calls per accepted, sequential ÷ fixed", "-" if result["ratio"] is None else result["ratio"])]  # fmt: skip
    models = ", ".join(f"{r} {m}" for r, m in result["models"].items()) or "-"
    decisions = ", ".join(f"{k} {v}" for k, v in result["decisions"].items()) or "-"
    dash = lambda v: "-" if v is None else v  # noqa: E731
    return [
        ("models", models),
        ("gate method / max rounds", f"{dash(result['gate_method'])} / {dash(result['max_rounds'])}"),
        ("sources / candidates", f"{dash(result['sources'])} / {result['candidates']}"),
        ("QV pass rate (passed / written)", f"{dash(result['qv_pass_rate'])} ({result['qv_passed']} / {result['items_written']})"),
        ("control pass share (passed / graded)", f"{dash(result['control_pass_share'])} ({result['controls_passed']} / {result['controls_graded']})"),
        ("control gap, mean", dash(result["control_gap_mean"])),
        ("decisions", decisions),
        ("accepted", result["accepted"]),
        ("accepted: weak mean / strong mean / gap", " / ".join(str(dash(result[k])) for k in ("accepted_weak_mean", "accepted_strong_mean", "accepted_gap"))),
        ("calls / tokens (cache hits among the calls)", f"{result['calls']} / {result['tokens']} ({result['cache_hits']})"),
        ("calls / tokens per accepted", f"{dash(result['calls_per_accepted'])} / {dash(result['tokens_per_accepted'])}"),
        ("wall s", dash(result["wall_s"])),
        ("wall s measured as", result["wall_from"]),
        ("validation", dash(result["validation"])),
        ("ratio: accepted ÷ candidates", dash(result["ratio"])),
    ]  # fmt: skip
