"""A recording webhook endpoint standing in for Xypr, reachable in-process or on a real port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from tests.support.moto import free_port

__all__ = ["Hit", "WebhookReceiver", "eventually", "serve"]

T = TypeVar("T")


@dataclass
class Hit:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str]

    def json(self) -> Any:
        """The body as JSON."""
        return orjson.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers verification GETs like Xypr, records POSTs, and fails the next ones on demand."""

    verify_token: str = "verify-me"
    hits: list[Hit] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    always: int | None = None

    def __post_init__(self) -> None:
        self.app = FastAPI()
        self.app.add_api_route("/{path:path}", self._handle, methods=["GET", "POST"])

    async def _handle(self, path: str, request: Request) -> Response:
        hit = Hit(request.method, "/" + path, dict(request.headers), await request.body(), dict(request.query_params))
        self.hits.append(hit)
        if request.method == "GET":
            if hit.query.get("hub.verify_token") == self.verify_token:
                return Response(hit.query.get("hub.challenge", ""), media_type="text/plain")
            return Response(status_code=403)
        if self.always is not None:
            return Response(status_code=self.always)
        if self.failures:
            return Response(status_code=self.failures.pop(0))
        return Response(b'{"ok":true}', media_type="application/json")

    def client(self) -> httpx.AsyncClient:
        """An HTTP client whose every request lands on this receiver, in-process."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), timeout=5)

    def posts(self) -> list[Hit]:
        """The POSTs received, oldest first."""
        return [h for h in self.hits if h.method == "POST"]


async def eventually(probe: Callable[[], Awaitable[T | None]], *, within: float = 5.0) -> T:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s (last: {result!r})")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port; yields its base URL (start-up bounded)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start within 10 s")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
