from __future__ import annotations

import asyncio

import pytest

from autodata.aio import map_bounded, window_for


async def test_results_keep_the_input_order_whatever_finishes_first():
    async def slow_for_small(x: int) -> int:
        await asyncio.sleep(0.001 * (10 - x))
        return x * x

    assert await map_bounded(slow_for_small, list(range(10)), window=4) == [
        x * x for x in range(10)
    ]


async def test_never_more_than_window_jobs_run_at_once():
    running = peak = 0

    async def job(_: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1

    await map_bounded(job, list(range(50)), window=7)
    assert peak == 7


async def test_an_error_cancels_the_other_jobs_and_is_raised_as_is():
    started: list[int] = []

    async def job(x: int) -> None:
        started.append(x)
        if x == 2:
            raise KeyError("boom")
        await asyncio.sleep(10)

    with pytest.raises(KeyError, match="boom"):
        await asyncio.wait_for(map_bounded(job, list(range(100)), window=3), timeout=5)
    assert len(started) == 3  # the others were cancelled, nothing new started


async def test_no_items_no_work():
    async def job(x: int) -> int:
        raise AssertionError("never called")

    assert await map_bounded(job, [], window=4) == []


def test_window_is_twice_the_slots_and_at_least_eight():
    assert window_for(64) == 128
    assert window_for(4, 2) == 12
    assert window_for(1) == 8
