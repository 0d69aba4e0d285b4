"""Judge probe: how one judge scores one solver's answers, the reference and a non-answer, on the
items a finished run wrote (its QV-passed challenges). The figures behind README's "What to
expect" (blind vs reference-guided per-answer judge on Qwen2.5-Coder-1.5B).

    python -m benchmarks.judge_probe RUN_DIR --judge URL MODEL --solver URL MODEL [--privileged]
        [--reference] [--rollouts 2]

Prints, per who (solver, ref, null), the mean score, how many were graded and how many scored
1.0, and writes ``judge_probe.json`` (every score, the judge's reasons, the answer's start) in
the current directory. No figure is asserted: it is a measurement, run against live servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import polars as pl

from autodata.errors import CallError
from autodata.llm.client import OpenAIChatClient
from autodata.settings import RoleModel
from tasks.judge import rubric_request, rubric_verdicts, weighted
from tasks.solve import solver_request


def items_of(run: Path) -> list[dict[str, Any]]:
    """The QV-passed challenges of every round of the run in ``run``, with their source text."""
    files = sorted(run.glob("data/interim/work/*/round_*/*/challenges.parquet"))
    passed = pl.concat([pl.read_parquet(f) for f in files]).filter(pl.col("qv_passed"))
    sources = pl.read_parquet(run / "data/processed/sources.parquet").select("source_id", "text")
    return passed.join(sources, on="source_id").to_dicts()


async def judged(
    judge: OpenAIChatClient, spec: RoleModel, item: dict, answer: str, ref: bool
) -> dict:
    """One per-answer verdict: its score and reasons (score None when the call failed)."""
    try:
        result = await judge.chat(rubric_request(item, answer, spec, ref))
    except CallError as exc:
        return {"score": None, "reasons": [str(exc)[:200]]}
    weights = [c["weight"] for c in item["rubric"]]
    met = rubric_verdicts(result, len(weights))
    reasons = [getattr(result.parsed[0], f"criterion_{i}").reason for i in range(1, len(met) + 1)]
    return {"score": weighted([float(m) for m in met], weights), "reasons": reasons}


async def probe(args: argparse.Namespace) -> list[dict]:
    items = items_of(Path(args.run))
    solver = OpenAIChatClient(args.solver[0], args.solver[1], timeout_s=1200, role="weak")
    judge = OpenAIChatClient(args.judge[0], args.judge[1], timeout_s=1200, role="judge")
    s_spec = RoleModel(backend="openai", base_url=args.solver[0], model=args.solver[1],
                       temperature=0.7, max_tokens=384, privileged=args.privileged)  # fmt: skip
    j_spec = RoleModel(backend="openai", base_url=args.judge[0], model=args.judge[1],
                       temperature=0.0, max_tokens=512)  # fmt: skip
    replies = await asyncio.gather(
        *(solver.chat(solver_request(it, s_spec, r)) for it in items for r in range(args.rollouts)),
        return_exceptions=True,
    )
    jobs = [("ref", i, it["reference_answer"]) for i, it in enumerate(items)]
    jobs += [("null", i, "I don't know.") for i in range(len(items))]
    for n, reply in enumerate(replies):
        if not isinstance(reply, BaseException) and not reply.truncated:
            jobs.append(("solver", n // args.rollouts, reply.texts[0]))
    grades = await asyncio.gather(
        *(judged(judge, j_spec, items[i], a, args.reference) for _, i, a in jobs)
    )
    await asyncio.gather(solver.aclose(), judge.aclose())
    return [
        {"who": w, "item": i, "answer": a[:300]} | g
        for (w, i, a), g in zip(jobs, grades, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a project directory a run finished in")
    parser.add_argument("--judge", nargs=2, metavar=("URL", "MODEL"), required=True)
    parser.add_argument("--solver", nargs=2, metavar=("URL", "MODEL"), required=True)
    parser.add_argument("--privileged", action="store_true", help="the solver also sees the source")
    parser.add_argument("--reference", action="store_true", help="reference-guided grading")
    parser.add_argument("--rollouts", type=int, default=2)
    rows = asyncio.run(probe(parser.parse_args()))
    Path("judge_probe.json").write_text(json.dumps(rows, indent=1))
    table = pl.DataFrame(
        [{k: r[k] for k in ("who", "score")} for r in rows],
        schema={"who": pl.String, "score": pl.Float64},
    )
    print(table.group_by("who").agg(mean=pl.col("score").mean(), graded=pl.col("score").count(),
                                    full=(pl.col("score") == 1.0).sum()).sort("who"))  # fmt: skip


if __name__ == "__main__":
    main()
