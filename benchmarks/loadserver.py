"""A lean OpenAI-compatible load server, run in its own process so its CPU is never the pipeline's.

Raw asyncio streams, HTTP/1.1 keep-alive, one coroutine per connection. Each chat request is
answered after ``latency_s + per_token_s × completion_tokens`` (``asyncio.sleep``, so thousands of
requests wait at once), by a role-correct responder:

- ``loop``: ``autodata.testing.roles.LoopScript`` — every role answers validly, the judge makes
  every item an accepted one (one round per source);
- ``sim``: :class:`benchmarks.sim.SimScript` — hidden weak/strong pass probabilities per item;
- ``optimize``: :class:`benchmarks.sim_optimize.OptimizeScript` — those probabilities depend on
  the challenger's instructions, and a scripted analyzer and editor (meta-optimization);
- ``ok``: the text "yes" (bare-client reference runs).

``GET /stats`` returns the server's own request count and CPU seconds, and the clock
(``time.monotonic``, the same in every process) of its first chat request's arrival and of its
last reply.

    python -m benchmarks.loadserver --mode loop --latency 0.2   # prints "PORT <n>", serves
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from autodata.testing.replies import Reply, Responder, WireResponse, as_reply, render
from autodata.testing.roles import LoopScript

Mode = Literal["loop", "sim", "optimize", "ok"]
REPO = Path(__file__).resolve().parents[1]
_PHRASES = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


@dataclass(frozen=True)
class LoadConfig:
    """What the load server does per request."""

    mode: Mode = "loop"
    latency_s: float = 0.0
    per_token_s: float = 0.0
    model: str = "scripted"
    sim_seed: int = 0

    def argv(self) -> list[str]:
        """Command-line arguments that recreate this config in the server process."""
        return ["--mode", self.mode, "--latency", str(self.latency_s), "--per-token",
                str(self.per_token_s), "--model", self.model, "--sim-seed", str(self.sim_seed)]  # fmt: skip


def responder_for(config: LoadConfig) -> Responder:
    """The role-correct responder of ``config.mode``."""
    if config.mode == "sim":
        from benchmarks.sim import SimScript

        return SimScript(sim_seed=config.sim_seed)
    if config.mode == "optimize":
        from benchmarks.sim_optimize import OptimizeScript

        return OptimizeScript(sim_seed=config.sim_seed)
    if config.mode == "ok":
        return lambda body: Reply(text="yes")
    return LoopScript()


class LoadServer:
    """The asyncio server; :meth:`serve` runs until cancelled."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.responder = responder_for(config)
        self.requests = 0
        self.connections = 0
        self.spans: list[tuple[float, float]] = []  # (arrival, reply) of each chat request

    async def serve(self, port: int = 0, ready: Any = None) -> None:
        """Listen on 127.0.0.1:``port``; call ``ready(port)`` once listening."""
        server = await asyncio.start_server(self._connection, "127.0.0.1", port, backlog=4096)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        if ready is not None:
            ready(server.sockets[0].getsockname()[1])
        async with server:
            await stop.wait()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, fields = _parse_head(head)
                length = int(fields.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                arrived = time.monotonic()
                out = self._route(method, path, raw)
                if out.delay_s > 0:
                    await asyncio.sleep(out.delay_s)
                close = fields.get("connection", "").lower() == "close"
                writer.write(_head(out, close) + out.body)
                if path.endswith("/chat/completions"):
                    self.spans.append((arrived, time.monotonic()))
                await writer.drain()
                if close:
                    break
        writer.close()

    def _route(self, method: str, path: str, raw: bytes) -> WireResponse:
        self.requests += 1
        if method == "GET" and path == "/stats":
            stats = {
                "requests": self.requests - 1,
                "connections": self.connections,
                "cpu_s": time.process_time(),
                "now": time.monotonic(),
                "chat_requests": len(self.spans),  # answered so far
                "first_arrival": min((a for a, _ in self.spans), default=None),
                "last_reply": max((b for _, b in self.spans), default=None),
            }
            return WireResponse(200, json.dumps(stats).encode())
        if method == "GET" and path == "/in-flight":
            return WireResponse(200, json.dumps(in_flight(self.spans, float(raw or 0.1))).encode())
        if method == "GET" and path in ("/health", "/v1/models"):
            return WireResponse(200, b'{"status":"ok"}')
        if method != "POST" or not path.endswith("/chat/completions"):
            return WireResponse(404, b'{"error":{"message":"unknown endpoint"}}')
        return self._chat(json.loads(raw))

    def _chat(self, body: dict[str, Any]) -> WireResponse:
        out = render(as_reply(self.responder(body)), body, self.config.model)
        out.delay_s += self.config.latency_s
        if self.config.per_token_s > 0 and out.status == 200:
            tokens = json.loads(out.body)["usage"]["completion_tokens"]
            out.delay_s += self.config.per_token_s * tokens
        return out


def in_flight(spans: list[tuple[float, float]], bucket_s: float) -> dict[str, Any]:
    """Mean requests in flight per ``bucket_s`` window, from the first arrival to the last reply
    (the server's view of saturation)."""
    if not spans:
        return {"start": None, "bucket_s": bucket_s, "mean": []}
    start = min(a for a, _ in spans)
    sums = [0.0] * (int((max(b for _, b in spans) - start) / bucket_s) + 1)
    for arrived, replied in spans:
        a, b = arrived - start, replied - start
        for i in range(int(a / bucket_s), int(b / bucket_s) + 1):
            lo, hi = max(a, i * bucket_s), min(b, (i + 1) * bucket_s)
            sums[i] += max(0.0, hi - lo)
    return {"start": start, "bucket_s": bucket_s, "mean": [round(x / bucket_s, 2) for x in sums]}


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            fields[name.strip().lower()] = value.strip()
    return method, path.split("?", 1)[0], fields


def _head(out: WireResponse, close: bool) -> bytes:
    lines = [f"HTTP/1.1 {out.status} {_PHRASES.get(out.status, 'Status')}",
             "Content-Type: application/json", f"Content-Length: {len(out.body)}"]  # fmt: skip
    lines.extend(f"{k}: {v}" for k, v in out.headers.items())
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class LoadServerProcess:
    """Run a :class:`LoadServer` in a child process (started here, stopped by its pid on exit)."""

    def __init__(self, config: LoadConfig, start_timeout_s: float = 30.0) -> None:
        self.config = config
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LoadServerProcess:
        cmd = [sys.executable, "-m", "benchmarks.loadserver", *self.config.argv()]
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], self.start_timeout_s)[0]:
            self.stop()
            raise RuntimeError(f"load server did not start within {self.start_timeout_s} s")
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"load server failed to start (printed {line!r})")
        self.port = int(line[1])
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """The server's request count, CPU seconds and clock (``time.monotonic``) now; chat
        requests answered, the first one's arrival and the last reply (None before any)."""
        import httpx

        return dict(httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=10).json())

    def in_flight(self, bucket_s: float = 0.1) -> dict[str, Any]:
        """Mean chat requests in flight per window since the server started (see in_flight)."""
        import httpx

        url = f"http://127.0.0.1:{self.port}/in-flight"
        return dict(httpx.request("GET", url, content=str(bucket_s), timeout=60).json())

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM; print ``PORT <n>`` once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["loop", "sim", "optimize", "ok"], default="loop")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--per-token", type=float, default=0.0)
    parser.add_argument("--model", default="scripted")
    parser.add_argument("--sim-seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    config = LoadConfig(args.mode, args.latency, args.per_token, args.model, args.sim_seed)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(LoadServer(config).serve(args.port, lambda p: print(f"PORT {p}", flush=True)))


if __name__ == "__main__":
    main()
