"""Deterministic kill points: a test seam for the kill-anywhere reliability tests.

``AUTODATA_TEST_KILL_AT=<label>:<n>`` makes this process SIGKILL itself the ``n``-th time
:func:`killpoint` is reached with that exact label (``n`` defaults to 1). Unset, every call is a
no-op: no behaviour of the pipeline depends on it. Labels in use (see
``tests/integration/test_reliability_kill.py``):

- ``ingest:before-write`` — sources read, tables not yet written;
- ``stage:before-write:<file stem>`` — a round stage computed, its parquet not yet written;
- ``atomic:before-rename:<file name>`` — a temp file written, not yet renamed over the target;
- ``cache:commit`` — rows inserted into the call cache, the transaction not yet committed;
- ``llm:response:<role>`` — a network reply received and committed to the cache, not yet used;
- ``loop:round-end`` — a round's files written, the next round not yet started;
- ``finalize:before-write``, ``validate:before-write``, ``export:before-write``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "AUTODATA_TEST_KILL_AT"
_hits: Counter[str] = Counter()
_lock = threading.Lock()


def killpoint(label: str) -> None:
    """SIGKILL this process at the configured hit of ``label``; otherwise do nothing."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, sep, nth = spec.rpartition(":")
    if not (sep and nth.isdigit()):
        wanted, nth = spec, "1"
    if label != wanted:
        return
    with _lock:
        _hits[label] += 1
        due = _hits[label] == int(nth)
    if due:
        os.kill(os.getpid(), signal.SIGKILL)
