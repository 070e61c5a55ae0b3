"""The JSON POST of the hot path (aiohttp) behaves like the httpx one it replaced, over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from tests.support.live import serve
from tests.support.moto import free_port
from xypr.core.http import AiohttpPoster, HttpxPoster, JsonPoster, UpstreamUnreachable, create_http_client


async def _upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes what it got; `/redirect` answers 302, `/slow` answers after 2 s, `/limited` 429 with Retry-After."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(2)
    status, headers = 200, [(b"content-type", b"application/json")]
    if path == "/redirect":
        status, headers = 302, [*headers, (b"location", b"/elsewhere")]
    if path == "/limited":
        status, headers = 429, [*headers, (b"retry-after", b"7")]
    echo = {
        "path": path,
        "query": scope["query_string"].decode(),
        "headers": {name.decode(): value.decode() for name, value in scope["headers"]},
        "body": orjson.loads(body) if body else None,
    }
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(echo)})


@pytest.fixture(params=["aiohttp", "httpx"])
async def poster(request: pytest.FixtureRequest) -> Any:
    if request.param == "aiohttp":
        made: JsonPoster = AiohttpPoster(timeout=0.5)
        yield made
        await made.aclose()
        return
    async with create_http_client(timeout=0.5) as http:
        yield HttpxPoster(http)


async def test_posts_json_with_headers_and_params(poster: JsonPoster) -> None:
    async with serve(_upstream) as url:
        answer = await poster.post_json(
            f"{url}/api/message", b'{"text":"hello"}', headers={"Authorization": "Bearer t"}, params={"a": "1"}
        )

    assert answer.status_code == 200
    assert answer.is_success
    echo = orjson.loads(answer.content)
    assert echo["path"] == "/api/message"
    assert echo["query"] == "a=1"
    assert echo["body"] == {"text": "hello"}
    assert echo["headers"]["authorization"] == "Bearer t"
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["user-agent"] == "xypr/0.1"


async def test_a_redirect_is_answered_not_followed(poster: JsonPoster) -> None:
    async with serve(_upstream) as url:
        answer = await poster.post_json(f"{url}/redirect", b"{}", headers={})

    assert answer.status_code == 302
    assert not answer.is_success
    assert answer.headers["Location"] == "/elsewhere"


async def test_headers_are_case_insensitive(poster: JsonPoster) -> None:
    async with serve(_upstream) as url:
        answer = await poster.post_json(f"{url}/limited", b"{}", headers={})

    assert answer.status_code == 429
    assert answer.headers.get("Retry-After") == answer.headers.get("retry-after") == "7"


async def test_timeouts_and_refused_connections_are_unreachable(poster: JsonPoster) -> None:
    async with serve(_upstream) as url:
        with pytest.raises(UpstreamUnreachable):
            await poster.post_json(f"{url}/slow", b"{}", headers={})
    with pytest.raises(UpstreamUnreachable):
        await poster.post_json(f"http://127.0.0.1:{free_port()}/nobody", b"{}", headers={})


async def test_httpx_poster_goes_through_the_given_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "x"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        answer = await HttpxPoster(http).post_json("https://api.example/x", b"{}", headers={"X-A": "b"})

    assert answer.status_code == 201
    assert orjson.loads(answer.content) == {"id": "x"}
    assert seen[0].headers["x-a"] == "b"
