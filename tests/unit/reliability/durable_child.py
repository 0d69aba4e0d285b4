"""Child process for the durability tests: N sequential chats through a cached client, then
SIGKILL itself at once (or earlier, at an ``AUTODATA_TEST_KILL_AT`` kill point).

Usage: python durable_child.py BASE_URL CACHE_DIR N
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from autodata.llm.cache import CallCache
from autodata.llm.client import ChatRequest, OpenAIChatClient


async def main(base_url: str, cache_dir: Path, n: int) -> None:
    client = OpenAIChatClient(base_url, "scripted", cache=CallCache(cache_dir), role="weak")
    for i in range(n):
        await client.chat(ChatRequest.of("s", f"question {i}"))
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush: what a kill leaves


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
