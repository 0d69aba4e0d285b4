"""A stand-in for the temporary Prefect server (``TemporaryServer.command``) in unit tests:
``fake_prefect_server.py PORT GO_FILE ENV_FILE``. It writes the migrate-on-start variable it was
given to ENV_FILE, waits until GO_FILE exists (the test decides when the "start-up" ends), then
answers ``GET /api/health`` on 127.0.0.1:PORT until killed."""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/api/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        return


def main() -> None:
    port, go, env_file = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    name = "PREFECT_SERVER_DATABASE_MIGRATE_ON_START"
    env_file.write_text(json.dumps({name: os.environ.get(name)}))
    while not go.exists():
        time.sleep(0.02)
    HTTPServer(("127.0.0.1", port), Health).serve_forever()


if __name__ == "__main__":
    main()
