"""The scripted loopback server: each feature that later tests and benchmarks rely on."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from autodata.testing.scripted_server import Reply, ScriptedServer, faulty

CHAT = "/chat/completions"


def _chat(model: str = "scripted", content: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def _client(server: ScriptedServer, timeout: float = 5) -> httpx.Client:
    """Plain HTTP: verify=False only skips loading the CA bundle (~0.2 s per client)."""
    return httpx.Client(base_url=server.base_url, timeout=timeout, verify=False)


def _content(resp: httpx.Response, index: int = 0) -> str:
    return resp.json()["choices"][index]["message"]["content"]


@pytest.fixture
def srv() -> Iterator[ScriptedServer]:
    with ScriptedServer(lambda body: "from responder") as server:
        yield server


@pytest.fixture
def client(srv: ScriptedServer) -> Iterator[httpx.Client]:
    with _client(srv) as c:
        yield c


def test_queued_replies_come_out_fifo_then_the_responder(srv, client):
    srv.queue("first", Reply(text="second"))
    texts = [_content(client.post(CHAT, json=_chat())) for _ in range(3)]
    assert texts == ["first", "second", "from responder"]


def test_without_responder_or_queue_the_reply_is_ok():
    with ScriptedServer() as server, _client(server) as c:
        assert _content(c.post(CHAT, json=_chat())) == "ok"


def test_responder_sees_the_request_body(client, srv):
    srv.responder = lambda body: body["messages"][-1]["content"].upper()
    assert _content(client.post(CHAT, json=_chat(content="shout"))) == "SHOUT"


def test_n_repeats_a_string_and_a_list_gives_one_text_per_choice(srv, client):
    srv.queue("same", Reply(text=["a", "b"]))
    repeated = client.post(CHAT, json=_chat(n=3)).json()["choices"]
    assert [c["message"]["content"] for c in repeated] == ["same"] * 3
    assert [c["index"] for c in repeated] == [0, 1, 2]
    listed = client.post(CHAT, json=_chat(n=2)).json()["choices"]
    assert [c["message"]["content"] for c in listed] == ["a", "b"]


def test_dict_reply_is_sent_as_json_content(srv, client):
    srv.queue({"question": "why?", "rubric": [{"criterion": "c", "weight": 2}]})
    content = _content(client.post(CHAT, json=_chat()))
    assert json.loads(content) == {"question": "why?", "rubric": [{"criterion": "c", "weight": 2}]}


def test_body_is_openai_shaped_with_estimated_usage(srv, client):
    srv.queue("x" * 40)
    body = client.post(CHAT, json=_chat(content="y" * 80)).json()
    assert body["object"] == "chat.completion" and body["model"] == "scripted"
    assert body["id"] and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    assert body["usage"] == {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}


def test_token_counts_can_be_scripted_and_are_at_least_one(srv, client):
    srv.queue(Reply(text="", prompt_tokens=7, completion_tokens=3), "")
    assert client.post(CHAT, json=_chat()).json()["usage"]["total_tokens"] == 10
    usage = client.post(CHAT, json=_chat(content="")).json()["usage"]
    assert usage["prompt_tokens"] == 1 and usage["completion_tokens"] == 1


def test_logprobs_have_the_openai_top_logprobs_shape(srv, client):
    srv.queue(Reply(text="Yes", logprobs=[{"No": -2.0, "Yes": -0.1}]))
    choice = client.post(CHAT, json=_chat(logprobs=True, top_logprobs=2)).json()["choices"][0]
    first = choice["logprobs"]["content"][0]
    assert (first["token"], first["logprob"]) == ("Yes", -0.1)
    tops = [(t["token"], t["logprob"]) for t in first["top_logprobs"]]
    assert tops == [("Yes", -0.1), ("No", -2.0)]
    assert first["top_logprobs"][1]["bytes"] == list(b"No")


def test_api_key_is_required_when_set():
    with (
        ScriptedServer(api_key="sk-test") as server,
        _client(server) as c,
    ):
        denied = c.post(CHAT, json=_chat())
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == "invalid_api_key"
        assert c.get("/models").status_code == 401
        allowed = c.post(CHAT, json=_chat(), headers={"Authorization": "Bearer sk-test"})
        assert _content(allowed) == "ok"


def test_unknown_model_is_404_with_openai_error(client):
    resp = client.post(CHAT, json=_chat(model="gpt-9"))
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "The model `gpt-9` does not exist."


def test_models_and_health_endpoints(client, srv):
    assert [m["id"] for m in client.get("/models").json()["data"]] == ["scripted"]
    assert client.get(f"http://127.0.0.1:{srv.port}/health").status_code == 200


def test_bad_json_is_400_and_unknown_paths_are_404(srv, client):
    bad = client.post(CHAT, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    assert client.post("/completions", json=_chat()).status_code == 404
    assert [r.body for r in srv.requests] == [{}, _chat()]


def test_connection_close_from_the_client_is_honoured(client):
    resp = client.post(CHAT, json=_chat(), headers={"Connection": "close"})
    assert _content(resp) == "from responder" and resp.headers["connection"] == "close"
    assert _content(client.post(CHAT, json=_chat())) == "from responder"


def test_status_and_retry_after_are_sent(srv, client):
    srv.queue(Reply(status=429, headers={"Retry-After": "0"}), "after")
    limited = client.post(CHAT, json=_chat())
    assert limited.status_code == 429 and limited.headers["retry-after"] == "0"
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert _content(client.post(CHAT, json=_chat())) == "after"  # same keep-alive client


def test_reset_fault_raises_a_transport_error(srv, client):
    srv.queue(Reply(fault="reset"))
    with pytest.raises(httpx.TransportError):
        client.post(CHAT, json=_chat())
    assert _content(client.post(CHAT, json=_chat())) == "from responder"


def test_truncate_fault_raises_while_reading_the_body(srv, client):
    srv.queue(Reply(fault="truncate"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(CHAT, json=_chat())


def test_garbage_fault_is_200_with_a_body_that_is_not_json(srv, client):
    srv.queue(Reply(fault="garbage"))
    resp = client.post(CHAT, json=_chat())
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        resp.json()


def test_delay_makes_a_short_client_timeout_fire(srv):
    srv.queue(Reply(text="late", delay_s=1.0))
    with _client(srv, timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.post(CHAT, json=_chat())


def test_latency_applies_to_every_chat_reply():
    with ScriptedServer(latency_s=0.1) as server, _client(server) as c:
        start = time.monotonic()
        c.post(CHAT, json=_chat())
        assert time.monotonic() - start >= 0.1


def test_requests_are_recorded_with_body_and_headers(srv, client):
    client.post(CHAT, json=_chat(temperature=0.7), headers={"X-Role": "judge"})
    client.get("/models")
    first, second = srv.requests
    assert first.path == "/v1/chat/completions" and first.body["temperature"] == 0.7
    assert first.headers["x-role"] == "judge"
    assert second.path == "/v1/models" and second.body == {}
    assert first.time <= second.time
    assert srv.count(lambda r: r.path.endswith("/models")) == 1


def test_a_responder_that_raises_gives_500_and_is_kept(srv, client):
    srv.responder = lambda body: 1 / 0
    assert client.post(CHAT, json=_chat()).status_code == 500
    assert isinstance(srv.errors[0], ZeroDivisionError)


def test_faulty_is_deterministic_by_seed():
    first = faulty(None, rate=0.5, seed=7)
    same = faulty(None, rate=0.5, seed=7)
    other = faulty(None, rate=0.5, seed=8)
    plan = [first.kind_for(i) for i in range(200)]
    assert plan == [same.kind_for(i) for i in range(200)]
    assert plan != [other.kind_for(i) for i in range(200)]
    assert 60 < sum(k is not None for k in plan) < 140
    assert {k for k in plan if k} == {
        "500",
        "503",
        "429",
        "timeout",
        "reset",
        "truncate",
        "garbage",
    }


def test_faulty_server_replays_the_same_fault_sequence():
    observed = []
    for _ in range(2):
        injector = faulty(lambda body: "fine", rate=0.4, seed=3, timeout_delay_s=0.3)
        with ScriptedServer(injector) as server, _client(server) as c:
            observed.append([_outcome(c) for _ in range(30)])
            assert injector.injected == [injector.kind_for(i) for i in range(30)]
    assert observed[0] == observed[1]
    assert "fine" in observed[0] and len(set(observed[0])) > 2


def _outcome(c: httpx.Client) -> str:
    try:
        resp = c.post(CHAT, json=_chat(), timeout=0.1)
        return _content(resp) if resp.status_code == 200 else str(resp.status_code)
    except (httpx.TransportError, json.JSONDecodeError) as exc:
        return type(exc).__name__


def test_parallel_requests_overlap_and_are_all_recorded():
    results: list[str] = []
    with ScriptedServer(lambda body: "done", latency_s=0.2) as server, _client(server) as c:

        def one(i: int) -> None:  # one pooled client shared by the threads: 20 connections
            results.append(_content(c.post(CHAT, json=_chat(content=f"q{i}"))))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
    assert results == ["done"] * 20
    assert elapsed < 2.0  # 20 x 0.2 s = 4 s if the server answered one at a time
    assert {r.body["messages"][0]["content"] for r in server.requests} == {
        f"q{i}" for i in range(20)
    }


def test_close_is_prompt_with_an_idle_keep_alive_connection():
    server = ScriptedServer()
    with _client(server) as c:
        c.post(CHAT, json=_chat())
        start = time.monotonic()
        server.close()
        assert time.monotonic() - start < 1.0
        server.close()  # idempotent
        with pytest.raises(httpx.TransportError):
            c.post(CHAT, json=_chat())
