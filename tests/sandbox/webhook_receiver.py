"""A recording webhook endpoint standing in for Xypr, reachable in-process or on a real port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
from fastapi import FastAPI, Request, Response

from tests.support.live import eventually, serve

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
