"""The real managed vLLM CPU server with the embedded SmolLM2 model, spoken to over plain HTTP.

One server start serves the whole module (~30-60 s on an idle 2-core machine, more when busy):
a separate "pipeline" process starts it through ``ServerRegistry`` and reports its URL; the
chat tests use it, and the last test SIGKILLs that process and checks that no vLLM process is
left. Needs ``bash scripts/setup-vllm.sh`` first (skipped otherwise).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jsonschema
import psutil
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
MODELS = ROOT / ".cache" / "models"

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "country": {"type": "string", "maxLength": 40},
        "confidence": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
    },
    "required": ["city", "country", "confidence"],
    "additionalProperties": False,
    "x-guidance": {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "},
}

PIPELINE = """
import json, sys, time
from pathlib import Path
from autodata.llm.vllm_server import ServerRegistry
from autodata.settings import EMBEDDED_MODEL, Paths, Vllm
cfg = Vllm(python=Path(sys.argv[1]), startup_timeout_s=400.0)
registry = ServerRegistry(cfg, Paths(models=Path(sys.argv[2]), logs=Path(sys.argv[3])))
t0 = time.monotonic()
url, name = registry.url_for(EMBEDDED_MODEL)
pid = registry.servers()[EMBEDDED_MODEL].pid
print(json.dumps({"url": url, "name": name, "pid": pid, "s": time.monotonic() - t0}), flush=True)
time.sleep(3600)
"""


@dataclass
class RealServer:
    url: str
    name: str
    pid: int  # also the process-group id
    pipeline: subprocess.Popen[str]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """A real vLLM server started by a separate pipeline process."""
    if not VLLM_PYTHON.exists():
        pytest.skip("no vLLM environment; run `bash scripts/setup-vllm.sh`")
    logs = tmp_path_factory.mktemp("vllm-logs")
    cmd = [sys.executable, "-c", PIPELINE, str(VLLM_PYTHON), str(MODELS), str(logs)]
    with open(logs / "pipeline.err", "w") as err:
        pipeline = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = pipeline.stdout.readline() if pipeline.stdout else ""
        assert line, f"pipeline failed to start vLLM:\n{(logs / 'pipeline.err').read_text()}"
        info = json.loads(line)
        print(f"vLLM ready in {info['s']:.1f}s at {info['url']}")
        yield RealServer(info["url"], info["name"], info["pid"], pipeline)
    finally:
        pipeline.terminate()  # a no-op after the SIGKILL test; otherwise its handler stops vLLM
        pipeline.wait(timeout=60)


def chat(server: RealServer, **body: object) -> dict:
    messages = [{"role": "user", "content": "Name a large city and its country."}]
    payload = {"model": server.name, "messages": messages, "max_tokens": 32, **body}
    reply = httpx.post(f"{server.url}/chat/completions", json=payload, timeout=120.0)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def texts(reply: dict) -> list[str]:
    return [choice["message"]["content"] for choice in reply["choices"]]


def test_json_schema_reply_parses_and_validates(real_server: RealServer):
    schema = {"name": "answer", "schema": ANSWER_SCHEMA}
    reply = chat(
        real_server,
        response_format={"type": "json_schema", "json_schema": schema},
        max_tokens=120,
        temperature=0.0,
    )
    (text,) = texts(reply)
    assert reply["choices"][0]["finish_reason"] == "stop", text
    plain_schema = {k: v for k, v in ANSWER_SCHEMA.items() if k != "x-guidance"}
    jsonschema.validate(json.loads(text), plain_schema)


def test_n3_returns_three_different_choices(real_server: RealServer):
    choices = texts(chat(real_server, n=3, temperature=0.9))
    assert len(choices) == 3
    assert len(set(choices)) > 1, choices


def test_same_seed_gives_same_text(real_server: RealServer):
    first = texts(chat(real_server, temperature=0.9, seed=1234))
    second = texts(chat(real_server, temperature=0.9, seed=1234))
    assert first == second


def running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def vllm_processes(pgid: int, port: str) -> list[psutil.Process]:
    """Live processes in the server's group, or whose command line names vLLM and its port."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        try:
            in_group = os.getpgid(proc.pid) == pgid
        except ProcessLookupError:
            continue
        named = "vllm" in cmdline and f"--port {port}" in cmdline
        if (in_group or named) and running(proc):
            found.append(proc)
    return found


# Must stay the last test of the module: it kills the shared server's pipeline process.
def test_sigkilled_pipeline_leaves_no_vllm_process(real_server: RealServer):
    argv = psutil.Process(real_server.pid).cmdline()
    port = argv[argv.index("--port") + 1]
    before = vllm_processes(real_server.pid, port)
    assert len(before) >= 3, f"expected API server, engine core and worker: {before}"
    real_server.pipeline.send_signal(signal.SIGKILL)
    real_server.pipeline.wait()
    deadline = time.monotonic() + 15
    while (alive := [p for p in before if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == []
    assert vllm_processes(real_server.pid, port) == []
