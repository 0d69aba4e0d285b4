"""``autodata bench saturation|overhead|compute|parse``: the rerunnable benchmarks in ``benchmarks/``.

Each prints one summary table and writes ``<out>/<name>.json`` (key ``ratio`` = its headline).
Imports are lazy: the benchmarks live in the source checkout, not in the installed package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

bench_app = typer.Typer(
    help="Benchmarks (see benchmarks/README.md): saturation, overhead, compute, optimize, parse.",
    no_args_is_help=True,
)
QuickOpt = Annotated[bool, typer.Option("--quick", help="Small sizes: under a minute on 2 cores.")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Directory for <name>.json [benchmarks/results].")
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
    sources: Annotated[int | None, typer.Option(help="Sources [2000; quick 200].")] = None,
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
