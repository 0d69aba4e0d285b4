"""A scripted OpenAI-compatible chat server on loopback: the one test double for model calls.

Real HTTP/1.1 (keep-alive, exact Content-Length) on 127.0.0.1, served from a background thread,
stdlib only. Each chat request is answered by the next queued reply, else the responder, else
"ok"; every request is recorded. Faults are scripted per reply (status codes, ``Retry-After``,
delays, reset sockets, truncated or non-JSON bodies), or injected at a seeded rate by ``faulty``.

    with ScriptedServer(lambda body: {"answer": 42}) as srv:
        httpx.post(f"{srv.base_url}/chat/completions", json={"model": "scripted", "messages": []})
        assert srv.count() == 1
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from autodata.testing.replies import (
    FAULT_KINDS,
    Fault,
    FaultInjector,
    Reply,
    Responder,
    WireResponse,
    as_reply,
    dumps,
    error_response,
    faulty,
    render,
)

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultInjector",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedServer",
    "as_reply",
    "faulty",
]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: header names lower-cased, ``time`` from ``time.monotonic()``."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    time: float


class ScriptedServer:
    """OpenAI-compatible server on 127.0.0.1 (random free port), running until ``close()``."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        model: str = "scripted",
        api_key: str | None = None,
        latency_s: float = 0.0,
        port: int = 0,
    ) -> None:
        self.responder = responder
        self.model = model
        self.api_key = api_key
        self.latency_s = latency_s
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []  # exceptions raised by the responder
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stop = threading.Event()
        self._httpd = _HTTPServer(self, port)  # port 0: a free one
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},  # bounds how long close() waits
            name=f"scripted-server-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def queue(self, *replies: Reply | str | dict[str, Any]) -> None:
        """Append canned replies; chat requests consume them FIFO before the responder."""
        with self._lock:
            self._queue.extend(as_reply(r) for r in replies)

    def count(self, predicate: Callable[[RecordedRequest], bool] | None = None) -> int:
        """Number of recorded requests (all paths), or of those matching ``predicate``."""
        with self._lock:
            recorded = list(self.requests)
        return sum(1 for r in recorded if predicate is None or predicate(r))

    def settle(self, quiet_s: float = 0.2, timeout_s: float = 10.0) -> None:
        """Wait until no connection has been open for ``quiet_s`` (at most ``timeout_s``). A request
        a client wrote just before it was killed is read and recorded by a handler thread after
        the client is gone: call this before counting a finished client's requests."""
        deadline, quiet_since = time.monotonic() + timeout_s, None
        while (now := time.monotonic()) < deadline:
            with self._lock:
                busy = bool(self._conns)
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet_s:
                return
            time.sleep(0.01)

    def close(self) -> None:
        """Stop serving, drop open connections, interrupt delays and join the server thread."""
        if self._thread is None:
            return
        self._stop.set()
        self._httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            _quiet_shutdown(conn)
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    # -- called from handler threads -------------------------------------------------------

    def _track(self, conn: socket.socket, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server is closing; True if interrupted."""
        return self._stop.wait(seconds)

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(path, headers, body, time.monotonic()))

    def _route(self, method: str, path: str, headers: dict[str, str], body: Any) -> WireResponse:
        """Answer one request; auth is checked before anything but /health."""
        if path == "/health":
            return WireResponse(200, b'{"status":"ok"}')
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return error_response(401, "Incorrect API key provided.", "invalid_api_key")
        if method == "GET" and path == "/v1/models":
            return WireResponse(200, dumps(self._models()))
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(body)
        return error_response(404, f"Unknown endpoint {method} {path}.", "unknown_url")

    def _models(self) -> dict[str, Any]:
        card = {"id": self.model, "object": "model", "created": 0, "owned_by": "scripted"}
        return {"object": "list", "data": [card]}

    def _chat(self, body: Any) -> WireResponse:
        """Check the body and model, then render the next scripted reply."""
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request."
            return error_response(400, message, "invalid_json")
        requested = body.get("model")
        if requested is not None and requested != self.model:
            message = f"The model `{requested}` does not exist."
            return error_response(404, message, "model_not_found")
        out = render(self._next_reply(body), body, self.model)
        out.delay_s += self.latency_s
        return out

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is None:
            return Reply(text="ok")
        try:
            return as_reply(self.responder(body))
        except Exception as exc:  # a broken responder is a test bug: keep it for the test to see
            with self._lock:
                self.errors.append(exc)
            return Reply(status=500, text=f"scripted responder raised {exc!r}")


# -- HTTP plumbing ---------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 makes a burst of new connections wait for SYN retries (1 s).
    request_queue_size = 256

    def __init__(self, scripted: ScriptedServer, port: int) -> None:
        self.scripted = scripted
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, resets) are expected here; anything else is reported."""
        if not (self.scripted._stop.is_set() or isinstance(sys.exc_info()[1], ConnectionError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    raw_requestline: bytes  # set by the stdlib's handle_one_request
    fields: dict[str, str]  # request headers, names lower-cased

    @property
    def scripted(self) -> ScriptedServer:
        return cast(_HTTPServer, self.server).scripted

    def setup(self) -> None:
        super().setup()
        self.scripted._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.scripted._track(self.connection, False)

    def parse_request(self) -> bool:
        """Lean stand-in for the stdlib parser (which runs email.parser: ~50 µs a request)."""
        words = self.raw_requestline.decode("latin-1").split()
        if len(words) != 3:
            self.close_connection = True
            return False
        self.command, self.path, self.request_version = words
        self.fields = {}
        for _ in range(200):
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.fields[name.strip().lower()] = value.strip()
        connection = self.fields.get("connection", "").lower()
        self.close_connection = connection == "close" or self.request_version == "HTTP/1.0"
        return True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def do_GET(self) -> None:
        """Serve GET /v1/models and /health."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Serve POST /v1/chat/completions."""
        self._serve("POST")

    def _serve(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        body = self._read_json()
        self.scripted._record(path, self.fields, body if isinstance(body, dict) else {})
        try:
            self._send(self.scripted._route(method, path, self.fields, body))
        except OSError:  # the client gave up (e.g. its timeout fired during a delay)
            self.close_connection = True

    def _read_json(self) -> Any:
        length = int(self.fields.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _send(self, out: WireResponse) -> None:
        if out.delay_s > 0 and self.scripted._sleep(out.delay_s):
            self.close_connection = True
            return
        if out.fault == "reset":
            self._reset()
            return
        body, length = out.body, len(out.body)
        if out.fault == "truncate":
            body = body[: length // 2]
            self.close_connection = True
        self.wfile.write(self._head(out, length) + body)

    def _head(self, out: WireResponse, length: int) -> bytes:
        try:
            phrase = HTTPStatus(out.status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {out.status} {phrase}", "Content-Type: application/json"]
        lines.append(f"Content-Length: {length}")
        lines.extend(f"{k}: {v}" for k, v in out.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _reset(self) -> None:
        """Close the socket with SO_LINGER 0, so the client sees a TCP reset and no response."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


def _quiet_shutdown(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client or by a reset fault
        conn.shutdown(socket.SHUT_RDWR)
