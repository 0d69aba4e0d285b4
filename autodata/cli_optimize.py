"""``autodata optimize run|show|promote``: meta-optimization of the challenger side (docs/optimize.md).

Thin: load settings once, run :func:`flows.optimize.optimize_flow` under the run lock and the
stop handling, print its figures; show the variant tree; write a variant into ``params.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from autodata.cli_common import console, say, settings_of
from autodata.cli_guard import guarded
from autodata.errors import ConfigError
from autodata.io import write_text
from autodata.settings import Settings, load_settings

optimize_app = typer.Typer(
    help="Meta-optimize the challenger side (prompts, worked example, sampling, verifier "
    "instructions) against held-out sources; show the variants; promote one. docs/optimize.md",
    no_args_is_help=True,
)
out = Console()


@optimize_app.command("run")
def run(
    ctx: typer.Context,
    iterations: Annotated[
        int | None, typer.Option(help="Iterations in all (overrides optimize.iterations).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False,
    verbose: Annotated[bool, typer.Option(help="Also the loop's progress bars per run.")] = False,
) -> None:
    """Run the optimizer; resumable (rerun the same command after a stop or a kill).

    The seed recipe is scored on the validation split; then per iteration a parent is drawn
    (Boltzmann, optimize.temperature), run on a training minibatch, the analyzer and the editor
    propose a child, which is scored on the validation split and kept if strictly better.
    Budgets and sizes: the optimize section of params.yaml."""
    from autodata.progress import Reporter

    settings = _with_iterations(settings_of(ctx), iterations)
    with guarded(settings, flows=True) as stop:
        from flows.optimize import optimize_flow  # while Prefect's server starts
        from tasks.generate import read_sources

        reporter, loop = Reporter(console, quiet), Reporter(console, quiet or not verbose)
        result = stop.run(optimize_flow(settings, read_sources(settings.paths), reporter, loop))
    _print_result(result)
    say(f"wrote {settings.paths.optimize} (variants, history, state) and {settings.paths.optimize_metrics}; "
        f"promote the best with `autodata optimize promote {result['best_variant']}`")  # fmt: skip


def _with_iterations(settings: Settings, iterations: int | None) -> Settings:
    if iterations is None:
        return settings
    if iterations < 0:
        raise ConfigError(f"--iterations {iterations}: must be 0 or more")
    return settings.model_copy(update={"optimize": settings.optimize.model_copy(update={"iterations": iterations})})  # fmt: skip


def _print_result(result: dict[str, Any]) -> None:
    table = Table("figure", "value", title="autodata optimize")
    rows = [("validation pass rate: seed", _num(result["seed_score"]), result["seed_variant"]),
            ("validation pass rate: best", _num(result["best_score"]), result["best_variant"])]  # fmt: skip
    for name, score, variant in rows:
        table.add_row(name, f"{score} ({variant})")
    refused = ", ".join(f"{k} {v}" for k, v in result["rejected"].items()) or "none"
    for name, value in [("iterations", result["iterations"]), ("children evaluated", result["evaluated_variants"]),
                        ("children kept", result["accepted_variants"]), ("proposals refused", refused),
                        ("model calls / tokens", f"{result['calls']} / {result['tokens']}"),
                        ("stopped", result["stopped"])]:  # fmt: skip
        table.add_row(name, escape(str(value)))
    out.print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@optimize_app.command("show")
def show(ctx: typer.Context) -> None:
    """Show the variant tree with validation pass rates.

    Each variant (its id is its recipe hash) sits under its parent; ● = kept in the population."""
    settings = settings_of(ctx)
    if not print_variants(settings):
        say(f"no variants in {settings.paths.optimize} yet: run `autodata optimize run`")


def print_variants(settings: Settings, console_: Console | None = None) -> bool:
    """Print the variant tree (also under ``autodata recipes``); False if there is none."""
    from tasks import optimize_store as store

    variants = store.read_variants(settings.paths)
    if not variants:
        return False
    children: dict[str | None, list[dict[str, Any]]] = {}
    for variant in variants.values():
        children.setdefault(variant["parent"], []).append(variant)
    tree = Tree("[bold]optimizer variants[/] (validation pass rate; ● kept in the population)")
    _grow(tree, None, children)
    (console_ or out).print(tree)
    return True


def _grow(node: Tree, parent: str | None, children: dict[str | None, list[dict[str, Any]]]) -> None:
    for v in sorted(children.get(parent, []), key=lambda v: v["iteration"]):
        mark = "●" if v["kept"] else "○"
        edit = escape((v.get("rationale") or "seed")[:70])
        label = (
            f"{mark} {v['variant_id']}  {_num(v['validation_score'])}  i{v['iteration']}  {edit}"
        )
        _grow(node.add(label), v["variant_id"], children)


@optimize_app.command("promote")
def promote(
    ctx: typer.Context,
    variant: Annotated[
        str, typer.Argument(help="A variant id (or unique prefix), or 'best'.")
    ] = "best",
) -> None:
    """Write a variant into params.yaml, so `dvc repro` regenerates the dataset with it.

    Sets prompts.* and the models.challenger sampling keys; comments and everything else kept."""
    params: Path = ctx.find_root().obj["params"]
    chosen = _chosen(settings_of(ctx), variant)
    _write_promoted(params, chosen["surface"])
    now = load_settings(params)
    note = "" if now.recipe_hash() == chosen["variant_id"] else (
        f" (recipe {now.recipe_hash()}: params.yaml differs from the optimized one outside the challenger side)")  # fmt: skip
    say(f"{params} now runs variant {chosen['variant_id']}{note}; run `dvc repro` to regenerate the dataset")  # fmt: skip


def _chosen(settings: Settings, wanted: str) -> dict[str, Any]:
    from tasks import optimize_store as store

    variants = store.read_variants(settings.paths)
    if wanted == "best":
        kept = [v for v in variants.values() if v["kept"]]
        if not kept:
            raise ConfigError(f"no variants in {settings.paths.optimize}: run `autodata optimize run` first")  # fmt: skip
        return max(kept, key=lambda v: (v["validation_score"], -v["iteration"]))
    matches = [v for k, v in variants.items() if k.startswith(wanted)]
    if len(matches) != 1:
        found = "no" if not matches else "several"
        raise ConfigError(f"{found} variant matches '{wanted}'; see `autodata optimize show`")
    return matches[0]


def _write_promoted(params: Path, surface: dict[str, Any]) -> None:
    from tasks.optimize_promote import promoted_params
    from tasks.optimize_surface import surface_of

    if not params.is_file():
        raise ConfigError(f"{params}: file not found; pass --params PATH")
    before = params.read_text()
    write_text(promoted_params(before, surface), params)
    if surface_of(load_settings(params)) != surface:  # never leave a recipe that is not the variant
        write_text(before, params)
        raise ConfigError(f"{params}: the promoted text did not read back as the variant; left unchanged")  # fmt: skip
