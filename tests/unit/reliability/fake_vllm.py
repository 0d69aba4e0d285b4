"""A stand-in for ``python -m vllm.entrypoints.openai.api_server``: the scripted loopback
server (playing every role, ``LoopScript``) on the ``--port`` and ``--served-model-name`` it is
given, so a managed backend can be started, killed and restarted in a second.

Environment: ``FAKE_VLLM_CALLS`` — append a line per chat request answered: its cache key, its
role and this incarnation's request count; ``FAKE_VLLM_DIE_AFTER=N`` — SIGKILL itself on the chat request after the N-th, in every
incarnation, or only in the first if ``FAKE_VLLM_DIE_ONCE`` names a marker file to create;
``FAKE_VLLM_LATENCY_S`` — seconds before each reply (default 0).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from autodata.llm.cache import cache_key
from autodata.testing.replies import Reply
from autodata.testing.roles import LoopScript, role_of
from autodata.testing.scripted_server import ScriptedServer


class Mortal:
    """LoopScript that logs what it answers and dies on cue."""

    def __init__(self) -> None:
        self.script = LoopScript()
        self.calls = 0
        self.lock = threading.Lock()
        self.log = os.environ.get("FAKE_VLLM_CALLS")
        self.die_after = int(os.environ.get("FAKE_VLLM_DIE_AFTER", "0"))
        once = os.environ.get("FAKE_VLLM_DIE_ONCE")
        if once and Path(once).exists():
            self.die_after = 0  # already died once
        elif once:
            Path(once).touch()

    def __call__(self, body: dict[str, Any]) -> Reply | str | dict[str, Any]:
        with self.lock:
            self.calls += 1
            if self.die_after and self.calls > self.die_after:
                os.kill(os.getpid(), signal.SIGKILL)
            reply = self.script(body)
            if self.log:
                with open(self.log, "a") as fh:
                    fh.write(f"{cache_key(body)} {role_of(body)} {self.calls}\n")
        return reply


def main(args: list[str]) -> None:
    port = int(args[args.index("--port") + 1])
    name = args[args.index("--served-model-name") + 1]
    latency_s = float(os.environ.get("FAKE_VLLM_LATENCY_S", "0"))
    with ScriptedServer(Mortal(), model=name, port=port, latency_s=latency_s):
        while True:
            time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1:])
