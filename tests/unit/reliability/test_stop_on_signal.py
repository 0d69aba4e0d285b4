"""The stop mechanics (issue 12, item 1) in a child process, without Prefect: the first signal
cancels the run's event loop (run in a worker thread, so nothing else takes the signal) and the
process ends with one line and 128 + the signal's number; a loop that does not yield is ended
after the grace period, after the clean-ups; so is one that gets a second signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = """
import asyncio, sys, time
from pathlib import Path
from autodata.stopping import StopOnSignal
mode, marker = sys.argv[1], Path(sys.argv[2])
stop = StopOnSignal(lambda s: f"stopped by {s}", lambda line: print(line, file=sys.stderr, flush=True), grace_s=float(sys.argv[3]))
stop.on_hard_stop(lambda: marker.write_text("cleaned up"))

async def work():
    print("READY", flush=True)
    if mode == "stuck":
        time.sleep(60)  # blocks the loop: a cancel cannot land
    await asyncio.sleep(60)

try:
    with stop:
        stop.run(work())
except BaseException:
    if stop.signum is None:
        raise
    stop.say_once()
    sys.exit(128 + stop.signum)
"""


def stopped(tmp_path: Path, mode: str, signals: list[int], grace_s: float = 2.0) -> tuple[int, list[str], float, bool]:  # fmt: skip
    """(exit code, stderr lines, seconds from the first signal to exit, clean-ups ran)."""
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(marker), str(grace_s)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "READY"
    start = time.monotonic()
    for sig in signals:
        os.kill(child.pid, sig)
        time.sleep(0.2)
    _, err = child.communicate(timeout=30)
    return child.returncode, err.strip().splitlines(), time.monotonic() - start, marker.exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_cancels_the_loop_and_ends_with_one_line(tmp_path: Path, sig: int, code: int) -> None:  # fmt: skip
    returncode, lines, took, cleaned = stopped(tmp_path, "cooperative", [sig])
    assert returncode == code and lines == [f"stopped by {sig}"]
    assert took < 2.0 and not cleaned  # the normal way out: no hard stop needed


def test_a_loop_that_does_not_yield_is_ended_after_the_grace_period(tmp_path: Path) -> None:
    returncode, lines, took, cleaned = stopped(tmp_path, "stuck", [signal.SIGTERM], grace_s=1.0)
    assert returncode == 143 and lines == [f"stopped by {signal.SIGTERM}"]
    assert 1.0 <= took < 4.0 and cleaned


def test_a_second_signal_ends_the_process_at_once(tmp_path: Path) -> None:
    twice = [signal.SIGINT, signal.SIGINT]
    returncode, lines, took, cleaned = stopped(tmp_path, "stuck", twice, grace_s=20.0)
    assert returncode == 130 and lines == [f"stopped by {signal.SIGINT}"]
    assert took < 5.0 and cleaned
