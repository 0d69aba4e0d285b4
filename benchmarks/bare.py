"""Reference clients: a bare asyncio loop posting chat bodies, nothing else (no cache, no retries,
no tables). What the pipeline is compared with.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["aiohttp", "httpx"]


@dataclass
class BareStats:
    """One replay: wall and CPU seconds of this process, calls and tokens."""

    kind: str
    wall_s: float
    cpu_s: float
    calls: int
    tokens_in: int
    tokens_out: int

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_s / max(self.calls, 1)


def judge_like_body(i: int, chars: int = 2500) -> dict[str, Any]:
    """A body shaped like a judge call (system + ~2.5 kB user prompt, logprobs)."""
    user = f"Context #{i}: " + "the supplier delivered late and the buyer gave notice. " * (
        chars // 55
    )
    return {"model": "scripted", "messages": [{"role": "system", "content": "You grade answers."},
            {"role": "user", "content": user}], "temperature": 0.0, "top_p": 1.0, "max_tokens": 4,
            "n": 1, "seed": i, "logprobs": True, "top_logprobs": 5}  # fmt: skip


async def _replay_aiohttp(url: str, bodies: Sequence[dict[str, Any]], k: int) -> list[dict]:
    import aiohttp

    limit = asyncio.Semaphore(k)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=k)) as session:

        async def one(body: dict[str, Any]) -> dict:
            async with limit, session.post(url, data=json.dumps(body), headers=headers) as resp:
                return dict(json.loads(await resp.read()))

        return await asyncio.gather(*(one(b) for b in bodies))


async def _replay_httpx(url: str, bodies: Sequence[dict[str, Any]], k: int) -> list[dict]:
    import httpx

    limits = httpx.Limits(max_connections=k, max_keepalive_connections=k)
    limit = asyncio.Semaphore(k)
    async with httpx.AsyncClient(limits=limits, timeout=600.0) as client:

        async def one(body: dict[str, Any]) -> dict:
            async with limit:
                return dict((await client.post(url, json=body)).json())

        return await asyncio.gather(*(one(b) for b in bodies))


def replay(base_url: str, bodies: Sequence[dict[str, Any]], concurrency: int, kind: Kind = "aiohttp") -> BareStats:  # fmt: skip
    """Post every body to ``base_url``/chat/completions, ``concurrency`` at a time; timed."""
    url = base_url.rstrip("/") + "/chat/completions"
    run = _replay_aiohttp if kind == "aiohttp" else _replay_httpx
    cpu0, wall0 = time.process_time(), time.perf_counter()
    replies = asyncio.run(run(url, bodies, concurrency))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    usage = [r.get("usage") or {} for r in replies]
    return BareStats(kind, wall, cpu, len(replies), sum(u.get("prompt_tokens", 0) for u in usage),
                     sum(u.get("completion_tokens", 0) for u in usage))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m benchmarks.bare BASE_URL CALLS CONCURRENCY [aiohttp|httpx]``: a whole bare
    process (interpreter, imports, the replay), what ``benchmarks/process.py`` times."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    base_url, calls, k = args[0], int(args[1]), int(args[2])
    kind: Kind = "httpx" if args[3:] == ["httpx"] else "aiohttp"
    stats = replay(base_url, [judge_like_body(i) for i in range(calls)], k, kind)
    print(json.dumps(stats.__dict__))


if __name__ == "__main__":
    main()
