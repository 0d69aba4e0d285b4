"""``autodata bench saturation|overhead|compute|optimize|parse|quality``: the rerunnable
benchmarks in ``benchmarks/``.

Each prints one summary table and writes ``<out>/<name>.json`` (key ``ratio`` = its headline).
``quality`` runs the models the settings (``--params``) name; the others use load or simulated
servers, or no model at all.
Imports are lazy: the benchmarks live in the source checkout, not in the installed package.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

bench_app = typer.Typer(
    help="Benchmarks (see benchmarks/README.md): saturation, overhead, compute, optimize, parse, "
    "quality.",
    no_args_is_help=True,
)
QuickOpt = Annotated[bool, typer.Option("--quick", help="Small sizes: under a minute on 2 cores.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Directory for <name>.json (default: benchmarks/results)."),
]
console = Console(stderr=True)


def _modules() -> Any:
    try:
        import benchmarks.common as common
    except ImportError as exc:
        console.print(
            f"[red]error:[/] cannot import the benchmarks ({exc}); run from the autodata source checkout"
        )
        raise typer.Exit(2) from exc
    return common


def _finish(
    name: str, result: dict[str, Any], rows: list[tuple[str, Any]], out: Path | None
) -> None:
    common = _modules()
    common.show(f"autodata bench {name}", rows)
    target = common.write_result(name, result, out or common.RESULTS)
    console.print(f"wrote {target}")


@bench_app.command()
def saturation(
    quick: QuickOpt = False,
    out: OutOpt = None,
    sources: Annotated[int | None, typer.Option(help="Sources (default: 2000; quick 200).")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-k", help="K per role.")] = 64,
    latency: Annotated[float, typer.Option(help="Seconds per request.")] = 0.2,
    per_token: Annotated[float, typer.Option(help="Seconds per completion token.")] = 0.0,
    vllm: Annotated[
        bool, typer.Option(help="Also measure against the real vLLM CPU server.")
    ] = False,
    vllm_env: Annotated[str, typer.Option(help="The vLLM environment for --vllm.")] = ".venv-vllm",
    vllm_sources: Annotated[int, typer.Option(help="Sources for the --vllm runs.")] = 4,
) -> None:
    """Requests/s of the generate stage at concurrency K ÷ the bound K / latency."""
    _modules()
    from benchmarks import saturation as bench

    opts = bench.Options.quick() if quick else bench.Options()
    over = {"sources": sources} if sources else {}
    opts = bench.Options(**(opts.__dict__ | over | {"concurrency": concurrency, "latency_s": latency,
                                                    "per_token_s": per_token, "vllm": vllm, "vllm_env": vllm_env,
                                                    "vllm_sources": vllm_sources}))  # fmt: skip
    result = bench.run(opts)
    _finish("saturation", result, bench.rows(result), out)


@bench_app.command()
def overhead(quick: QuickOpt = False, out: OutOpt = None) -> None:
    """Pipeline CPU per LLM request, and wall-time growth from 1,000 to 10,000 sources."""
    _modules()
    from benchmarks import overhead as bench

    result = bench.run(bench.Options.quick() if quick else bench.Options())
    _finish("overhead", result, bench.rows(result), out)


@bench_app.command()
def parse(quick: QuickOpt = False, out: OutOpt = None) -> None:
    """Ingest seconds of a 1 MB and a 5 MB HTML page, and their ratio (linear: 5)."""
    _modules()
    from benchmarks import parse as bench

    result = bench.run(bench.Options.quick() if quick else bench.Options())
    _finish("parse", result, bench.rows(result), out)


@bench_app.command()
def compute(quick: QuickOpt = False, out: OutOpt = None) -> None:
    """Fixed 3+3 vs sequential gate: precision, recall, calls and tokens per accepted, gaps."""
    _modules()
    from benchmarks import compute as bench

    result = bench.run(bench.Options.quick() if quick else bench.Options())
    _finish("compute", result, bench.rows(result), out)


@bench_app.command()
def optimize(quick: QuickOpt = False, out: OutOpt = None) -> None:
    """Meta-optimization in simulation: validation pass rate seed → best, edits refused."""
    _modules()
    from benchmarks import optimize as bench

    result = bench.run(bench.Options.quick() if quick else bench.Options())
    _finish("optimize", result, bench.rows(result), out)


class GateMethod(StrEnum):
    fixed = "fixed"
    sequential = "sequential"
    both = "both"


@bench_app.command()
def quality(
    ctx: typer.Context,
    out: OutOpt = None,
    sources: Annotated[
        Path, typer.Option(help="Sources folder the run ingests.", show_default=True)
    ] = Path("data/sources"),
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Use only N files of the folder, each sub-folder's in turn."),
    ] = None,
    max_rounds: Annotated[
        int | None,
        typer.Option(min=1, max=100, help="Rounds per source (default: loop.max_rounds)."),
    ] = None,
    gate: Annotated[
        GateMethod | None,
        typer.Option(
            help="Gate method (default: gate.method); both: fixed, then sequential on the same "
            "items (a shared call cache), side by side.",
            case_sensitive=False,
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="New or empty directory the run writes in (default: a new temporary one, kept)."
        ),
    ] = None,
    from_run: Annotated[
        Path | None,
        typer.Option(
            "--from-run",
            help="Run nothing: read the figures of a run that finished in this project "
            "directory (e.g. '.' after `autodata run`).",
        ),
    ] = None,
    wall_s: Annotated[
        float | None,
        typer.Option(
            help="With --from-run: the run's measured wall seconds (default: from file times)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Quality on the configured models (--params; default the embedded ones): runs the whole
    pipeline on a sources folder in a work directory of its own (empty call cache) and reports QV
    pass rate, judge control pass share and mean control gap, decisions, accepted, weak/strong
    means and gap of accepted items, calls and tokens per accepted, wall time. It takes as long
    as `autodata run` on those models (bound it with --limit and --max-rounds), or no time with
    --from-run. Writes benchmarks/results/quality.json (or --out DIR). Settings:
    `autodata --params FILE bench quality ...`."""
    from autodata import logfilter
    from autodata.cli_common import settings_of
    from autodata.progress import Reporter

    _modules()
    from benchmarks import quality as bench

    settings = settings_of(ctx)
    if from_run is not None:
        result = bench.from_run(settings, from_run, wall_s)
    else:
        logfilter.install()
        opts = bench.Options(sources=sources, limit=limit, max_rounds=max_rounds,
                             gate=gate.value if gate else None, workdir=workdir)  # fmt: skip
        result = bench.run(settings, opts, Reporter(console, quiet))
        console.print(f"the run's project: {result['workdir']} (read again with --from-run)")
    _finish("quality", result, bench.rows(result), out)


@bench_app.command()
def process(quick: QuickOpt = False, out: OutOpt = None) -> None:
    """Whole process: `autodata run` of ~1,000 requests vs a bare asyncio client; Prefect's start."""
    _modules()
    from benchmarks import process as bench

    result = bench.run(bench.Options.quick() if quick else bench.Options())
    _finish("process", result, bench.rows(result), out)
