"""Meta-optimization of the challenger side as a Prefect flow (docs/optimize.md). It only
orchestrates: every run of a variant is the real loop (:func:`flows.generate.generate_flow`),
every decision is made in ``tasks/optimize*.py``, every step is written to the history.

Source: Meta FAIR's Autodata write-up. Per iteration: a parent drawn by Boltzmann sampling from
the population, run on a training minibatch; an analyzer's root-cause analysis of that run; an
editor's variant; the child scored on the validation split (``optimize.repeats`` runs, averaged)
and kept only if strictly better than its parent. Resumable: state after every step, loop files
per run and the per-call cache; a resumed iteration replays its finished steps from them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
from prefect import flow
from rich.markup import escape

from autodata.errors import ConfigError, MeasurementChanged, SourceError
from autodata.io import write_json
from autodata.progress import Reporter
from autodata.settings import Settings
from flows.generate import generate_flow
from tasks import optimize_split as splits
from tasks import optimize_store as store
from tasks.optimize import (
    RunScore,
    Spend,
    budget_stop,
    digest,
    iteration_stop,
    minibatch,
    pass_rate,
    pick_parent,
    run_stop,
)
from tasks.optimize_propose import Proposal, propose_task
from tasks.optimize_surface import (
    Rejection,
    Surface,
    apply_edits,
    diff,
    measurement_hash,
    surface_of,
    variant_id,
    with_surface,
)

REPEAT_SEED_STRIDE = 100_003  # challenger seed offset per validation repeat (a fresh sample)


class _Stop(Exception):
    """A budget ran out: ``scope`` "iteration" ends the iteration, "run" the whole run."""

    def __init__(self, scope: str, reason: str) -> None:
        super().__init__(reason)
        self.scope, self.reason = scope, reason


@dataclass
class Run:
    """One optimization: the base settings, the split, the state and the history."""

    settings: Settings
    sources: pl.DataFrame
    train: list[str]
    validation: list[str]
    measurement: str
    state: store.State
    history: store.History
    reporter: Reporter
    loop_reporter: Reporter

    def charge(self, spend: Spend, *, iteration: bool = True) -> None:
        """Count ``spend``, save the state, and stop if a budget is spent."""
        state = self.state
        state.spent, state.iteration_spent = state.spent + spend, state.iteration_spent + spend
        store.write_state(self.settings.paths, state)
        if (why := budget_stop(state.spent, self.settings.optimize)) is not None:
            raise _Stop("run", why)
        if iteration and (why := iteration_stop(state.iteration_spent, self.settings.optimize)):
            raise _Stop("iteration", why)


def eval_settings(base: Settings, surface: Mapping[str, Any], repeat: int, label: str) -> Settings:
    """The settings of one optimizer run: ``surface`` on ``base``, ``optimize.max_rounds``
    rounds, the challenger's seed moved per repeat, loop files in the run's own folder."""
    settings = with_surface(base, surface)
    spec = settings.models.challenger
    challenger = spec.model_copy(update={"seed": spec.seed + REPEAT_SEED_STRIDE * repeat})
    folder = store.runs_dir(base.paths) / f"{settings.recipe_hash()}-{label}"
    return settings.model_copy(update={
        "models": settings.models.model_copy(update={"challenger": challenger}),
        "loop": settings.loop.model_copy(update={"max_rounds": base.optimize.max_rounds}),
        "paths": settings.paths.model_copy(update={"interim": folder}),
    })  # fmt: skip


async def evaluate(
    run: Run, surface: Surface, ids: list[str], label: str, repeat: int = 0
) -> tuple[RunScore, dict[str, pl.DataFrame], Spend]:
    """Run the loop with ``surface`` over the sources ``ids``; its score from the gate's
    decisions. The measurement is checked first (:class:`MeasurementChanged` if it moved)."""
    settings = eval_settings(run.settings, surface, repeat, label)
    if measurement_hash(settings, run.validation) != run.measurement:
        raise MeasurementChanged(
            "the measurement changed during optimization (a solver or judge prompt file, the "
            "gate, controls or models); restore it and rerun `autodata optimize run` to resume"
        )
    chosen = run.sources.filter(pl.col("source_id").is_in(ids))
    run.reporter.line(f"  {variant_id(run.settings, surface)} {label}: {chosen.height} sources …")
    out = await generate_flow(settings, chosen, run.loop_reporter)
    return pass_rate(out["loop_rounds"]), dict(out), Spend.of(out.calls)


async def validate(run: Run, surface: Surface, iteration: int) -> list[float | None]:
    """The variant's validation score per repeat (history: one ``evaluate`` step each)."""
    vid, scores = variant_id(run.settings, surface), []
    for repeat in range(run.settings.optimize.repeats):
        result, _, spend = await evaluate(run, surface, run.validation, f"validation-r{repeat}", repeat)  # fmt: skip
        run.history.log(f"{iteration}:evaluate:{vid}:validation:{repeat}", "evaluate", iteration,
                        variant=vid, split="validation", repeat=repeat, **_figures(result, spend))  # fmt: skip
        scores.append(result.score)
        run.charge(spend, iteration=iteration > 0)
    return scores


def mean_score(scores: list[float | None]) -> float | None:
    """The mean of the repeats that generated anything (None if none did)."""
    known = [s for s in scores if s is not None]
    return sum(known) / len(known) if known else None


def _figures(result: RunScore, spend: Spend) -> dict[str, Any]:
    return {"score": result.score, "accepted": result.accepted, "generated": result.generated,
            "infra_errors": result.infra_errors, "decisions": result.decisions,
            "calls": spend.calls, "tokens": spend.tokens}  # fmt: skip


async def start(settings: Settings, sources: pl.DataFrame, reporter: Reporter, loop_reporter: Reporter) -> Run:  # fmt: skip
    """Split the sources, check or create the state, and score the seed variant."""
    paths, opt = settings.paths, settings.optimize
    split = splits.assign(sources["source_id"].to_list(), opt.validation_share, opt.seed, store.stored_split(paths))  # fmt: skip
    store.save_split(paths, split)
    present = sources["source_id"].to_list()
    train, validation = (splits.ids_of(split, side, present) for side in (splits.TRAIN, splits.VALIDATION))  # fmt: skip
    if not train or not validation:
        raise SourceError(f"optimize needs sources on both sides of the split ({len(train)} training, "
                          f"{len(validation)} validation); ingest more sources (at least 2)")  # fmt: skip
    seed = surface_of(settings)
    measurement = measurement_hash(eval_settings(settings, seed, 0, "seed"), validation)
    state = _resumed_state(settings, measurement, variant_id(settings, seed))
    run = Run(settings, sources, train, validation, measurement, state, store.History(store.history_path(paths)),
              reporter, loop_reporter)  # fmt: skip
    run.history.log("0:start", "start", 0, seed_variant=state.seed_variant, measurement=measurement,
                    train=len(train), validation=len(validation))  # fmt: skip
    return run


def _resumed_state(settings: Settings, measurement: str, seed_id: str) -> store.State:
    paths = settings.paths
    state = store.read_state(paths)
    if state is None:
        return store.State(measurement, seed_id)
    if state.measurement != measurement:
        raise MeasurementChanged(
            f"{store.state_path(paths)} was started under another measurement (solver or judge "
            "prompts, gate, controls, models, rollouts, optimize.max_rounds or the validation "
            f"split differ); restore them, or move {paths.optimize} away to start afresh"
        )
    if state.seed_variant != seed_id:
        raise ConfigError(
            f"{store.state_path(paths)} started from variant {state.seed_variant}, but the "
            f"recipe now runs {seed_id} (a promoted variant?); move {paths.optimize} away to "
            "optimize from the new recipe"
        )
    return state


async def _score_seed(run: Run, seed: Surface) -> None:
    seed_id = run.state.seed_variant
    scores = await validate(run, seed, 0)
    score = mean_score(scores)
    if score is None:
        raise SourceError("the seed recipe generated no item on the validation sources (every "
                          "round failed its model calls); check `autodata models check`")  # fmt: skip
    store.add_variant(run.settings.paths, {"variant_id": seed_id, "parent": None, "iteration": 0,
        "surface": seed, "validation_scores": scores, "validation_score": score, "kept": True})  # fmt: skip
    run.state.population[seed_id] = score
    store.write_state(run.settings.paths, run.state)
    run.reporter.line(f"seed {seed_id}: validation pass rate {score:.3f} on {len(run.validation)} sources")  # fmt: skip


async def iteration(run: Run, i: int) -> str:
    """One iteration; returns its one-line outcome (raises :class:`_Stop` on a spent budget)."""
    opt, paths, state = run.settings.optimize, run.settings.paths, run.state
    rng = random.Random(f"{opt.seed}:{i}")
    parent, probability = pick_parent(state.population, opt.temperature, rng)
    batch = minibatch(run.train, opt.minibatch, rng)
    surface = store.read_variants(paths)[parent]["surface"]
    run.history.log(f"{i}:select", "select", i, parent=parent, probability=probability,
                    parent_score=state.population[parent], minibatch=batch)  # fmt: skip
    result, frames, spend = await evaluate(run, surface, batch, f"train-i{i:04d}")
    run.history.log(
        f"{i}:train", "train", i, variant=parent, split="train", **_figures(result, spend)
    )
    run.charge(spend)
    run_digest = digest(frames["loop_rounds"], frames["challenges"], run.train, opt.digest_chars)
    proposal = await propose_task(run.settings, run_digest, surface, i, _announce(run))
    run.history.log(f"{i}:propose", "propose", i, parent=parent, digest=run_digest, analysis=proposal.analysis,
                    rationale=proposal.rationale, edits=[e.model_dump() for e in proposal.edits],
                    failure=proposal.failure, calls=proposal.spend.calls, tokens=proposal.spend.tokens)  # fmt: skip
    run.charge(proposal.spend)
    head = f"parent {parent} ({state.population[parent]:.3f}, p={probability:.2f}), train {_rate(result)}"
    return f"{head} · {await _child(run, i, parent, surface, proposal)}"


async def _child(run: Run, i: int, parent: str, surface: Surface, proposal: Proposal) -> str:
    """Check the proposal, score the child on validation, keep it if strictly better."""
    if proposal.failure is not None:
        return f"no proposal ({proposal.failure})"
    child = apply_edits(surface, proposal.edits, run.settings.optimize)
    if isinstance(child, Rejection):
        run.history.log(
            f"{i}:reject", "reject", i, parent=parent, kind=child.kind, reason=child.reason
        )
        return f"refused ({child.kind}): {child.reason}"
    child_id, known = variant_id(run.settings, child), store.read_variants(run.settings.paths)
    scores = (
        known[child_id]["validation_scores"] if child_id in known else await validate(run, child, i)
    )
    score, parent_score = mean_score(scores), run.state.population[parent]
    kept = child_id not in run.state.population and score is not None and score > parent_score
    if child_id not in known:
        store.add_variant(run.settings.paths, {"variant_id": child_id, "parent": parent, "iteration": i,
            "analysis": proposal.analysis, "rationale": proposal.rationale,
            "edits": [e.model_dump() for e in proposal.edits], "diff": diff(surface, child), "surface": child,
            "validation_scores": scores, "validation_score": score, "kept": kept})  # fmt: skip
    if kept and score is not None:
        run.state.population[child_id] = score
    run.history.log(f"{i}:decide", "decide", i, parent=parent, child=child_id, child_score=score,
                    parent_score=parent_score, kept=kept, seen_before=child_id in known)  # fmt: skip
    member = child_id in run.state.population
    verdict = "kept" if kept else "already in the population" if member else "not better"
    return f"child {child_id} {_num(score)} vs {parent_score:.3f}: {verdict}"


def _rate(result: RunScore) -> str:
    return f"{result.accepted}/{result.generated} accepted"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _announce(run: Run) -> Any:
    return lambda text: run.reporter.line(escape(text))


def _end_iteration(run: Run, i: int, line: str) -> None:
    run.state.iteration, run.state.iteration_spent = i, Spend()
    store.write_state(run.settings.paths, run.state)
    run.reporter.line(f"iteration {i}/{run.settings.optimize.iterations}: {escape(line)}")


def summary(run: Run, stopped: str) -> dict[str, Any]:
    """The run's figures (also ``Paths.optimize_metrics``, which ``dvc metrics diff`` compares)."""
    state, variants = run.state, store.read_variants(run.settings.paths)
    rejected = store.rejections(run.settings.paths)
    ranked = sorted(state.population, key=lambda v: (-state.population[v], v != state.seed_variant))
    best = ranked[0] if ranked else None
    return {
        "seed_variant": state.seed_variant, "seed_score": state.population.get(state.seed_variant),
        "best_variant": best, "best_score": state.population.get(best or ""), "iterations": state.iteration,
        "accepted_variants": max(len(state.population) - 1, 0), "evaluated_variants": max(len(variants) - 1, 0),
        "rejected": rejected, "rejected_forbidden": rejected.get("forbidden", 0),
        "calls": state.spent.calls, "tokens": state.spent.tokens, "stopped": stopped,
        "validation": {v: e["validation_score"] for v, e in variants.items()},
    }  # fmt: skip


def _finish(run: Run, stopped: str) -> dict[str, Any]:
    run.state.stopped = stopped
    store.write_state(run.settings.paths, run.state)
    result = summary(run, stopped)
    write_json(result, run.settings.paths.optimize_metrics)
    run.history.log(f"{run.state.iteration}:stop:{store.now()}", "stop", run.state.iteration,
                    reason=stopped, best_variant=result["best_variant"], best_score=result["best_score"])  # fmt: skip
    best = f"best {result['best_variant']} ({_num(result['best_score'])})"
    run.reporter.line(f"stopped: {escape(stopped)}; {best}, seed {_num(result['seed_score'])}")
    return result


async def _iterate(run: Run) -> str:
    """Iterations until one of ``run_stop``'s limits; the reason it stopped."""
    while (why := run_stop(run.state.spent, run.state.iteration, run.settings.optimize)) is None:
        i = run.state.iteration + 1
        try:
            _end_iteration(run, i, await iteration(run, i))
        except _Stop as stop:
            if stop.scope == "run":
                return stop.reason
            _end_iteration(run, i, f"stopped: {stop.reason}")
    return why


@flow(name="optimize", validate_parameters=False)
async def optimize_flow(
    settings: Settings,
    sources: pl.DataFrame,
    reporter: Reporter,
    loop_reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Score the seed, then iterate until ``optimize.iterations`` or a budget is spent; write
    the metrics and return :func:`summary` (``loop_reporter``: the loop's own progress bars)."""
    run = await start(settings, sources, reporter, loop_reporter or Reporter(quiet=True))
    try:
        if not run.state.population:
            await _score_seed(run, surface_of(settings))
        stopped = await _iterate(run)
    except _Stop as stop:  # a run budget spent while the seed was scored
        stopped = stop.reason
    return _finish(run, stopped)
