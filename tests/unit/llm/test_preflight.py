"""Preflight of one endpoint: a URL that answers with a web page is named before any call."""

from __future__ import annotations

import httpx
import pytest

from autodata.errors import BackendError
from autodata.llm.preflight import probe


def _http(status: int, body: bytes, content_type: str) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
async def test_a_web_page_at_the_base_url_stops_the_run_naming_the_setting(content_type):
    page = b"<!DOCTYPE html><html><head><title>Sign in</title></head></html>"
    async with _http(200, page, content_type) as http:
        with pytest.raises(
            BackendError,
            match=r"judge: http://gpu-box/ answers with a web page.*models\.judge\.base_url",
        ):
            await probe(http, "judge", "http://gpu-box/", "m", None)


async def test_a_model_listing_passes():
    async with _http(200, b'{"object": "list", "data": [{"id": "m"}]}', "application/json") as http:
        await probe(http, "judge", "http://gpu-box/v1", "m", None)
