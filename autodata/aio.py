"""Running a stage's many LLM jobs concurrently without creating them all at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def window_for(*concurrencies: int) -> int:
    """Jobs to keep running for clients with these slot counts: twice their slots, so a job is
    always ready when a slot frees (jobs fan out or wait on each other), and at least 8."""
    return max(8, 2 * sum(concurrencies))


async def map_bounded(
    fn: Callable[[In], Awaitable[Out]], items: Sequence[In], window: int
) -> list[Out]:
    """``[await fn(x) for x in items]`` run concurrently, at most ``window`` at once, in order.

    ``asyncio.gather`` over every item would create all coroutines up front: memory grows with
    the stage, and the burst stalls the event loop (a full garbage collection over tens of
    thousands of new objects) while every slot waits for its next request. The first error
    cancels the remaining jobs and is raised as is.
    """
    results: list[Out | None] = [None] * len(items)
    pending = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:
            results[index] = await fn(item)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(window, len(items)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        raise
    return results  # type: ignore[return-value]  # every index was filled
