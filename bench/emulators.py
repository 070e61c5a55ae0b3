"""The Meta and Genesys emulators in their own process, with upstream latency and arrival records for the bench.

`python -m bench.emulators --port P [--latency-ms 100] [--meta-statuses]` serves the emulated Graph
API under `/meta` and the emulated Genesys Cloud under `/genesys` (uvicorn, uvloop, httptools), so
they never share the bridge's event loop or CPU share. Two small ASGI layers belong to the bench:

- `UpstreamLatency` makes every Graph API and Open Messaging API request (not the `/_sandbox`
  control routes) answer `latency` seconds later, with `asyncio.sleep` so requests overlap as they
  would against a distant Meta or Genesys;
- `ArrivalRecorder` notes, for every Open Messaging `…/inbound/open/message` and Graph
  `…/messages` send that is answered 2xx, when it arrived (wall clock), in which order, and its key
  (`channel.messageId` = the wamid, or the text of a Graph send).

Control routes of the bench: `GET /_bench/arrivals?after=N`, `POST /_bench/reset`,
`POST /_bench/latency` (`{"ms": 100}`), `GET /_bench/health`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xypr.sandbox.genesys.app import create_genesys_app
from xypr.sandbox.meta.app import create_meta_app

__all__ = [
    "META_STATUSES",
    "ArrivalRecorder",
    "Arrivals",
    "BenchState",
    "UpstreamLatency",
    "create_emulators_app",
    "is_upstream_api",
    "main",
]

META_STATUSES = ("sent", "delivered", "read")
"""The status webhooks the Meta emulator posts after each send when they are switched on."""

_GENESYS_MESSAGE = re.compile(r"^/genesys/api/v2/conversations/messages/[^/]+/inbound/open/message$")
_GRAPH_SEND = re.compile(r"^/meta/v\d+\.\d+/[^/]+/messages$")


def is_upstream_api(path: str) -> bool:
    """True for the emulated Graph API and Genesys API/login routes, false for control routes."""
    for prefix in ("/meta/", "/genesys/"):
        if path.startswith(prefix):
            return not path[len(prefix) :].startswith("_sandbox")
    return False


@dataclass(slots=True)
class Arrivals:
    """Accepted upstream requests, in arrival order: (order, wall time, kind, key, customer)."""

    rows: list[tuple[int, float, str, str, str]] = field(default_factory=list)
    next_order: int = 0
    offset: int = 0  # rows dropped by `reset` so far; `after` indices stay global

    def take_order(self) -> int:
        """The next arrival number (taken when the request comes in, before any latency)."""
        order = self.next_order
        self.next_order += 1
        return order

    def since(self, after: int) -> list[tuple[int, float, str, str, str]]:
        """Rows with a global index ≥ `after`."""
        return self.rows[max(0, after - self.offset) :]

    def reset(self) -> None:
        """Forget the rows (indices keep counting)."""
        self.offset += len(self.rows)
        self.rows.clear()


@dataclass(slots=True)
class BenchState:
    """Mutable knobs and records shared by the bench layers and routes."""

    latency: float = 0.0
    arrivals: Arrivals = field(default_factory=Arrivals)


class UpstreamLatency:
    """Delays the Graph API and Genesys API answers by `state.latency` seconds (concurrently)."""

    def __init__(self, app: ASGIApp, state: BenchState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.state.latency > 0 and is_upstream_api(scope["path"]):
            await asyncio.sleep(self.state.latency)
        await self.app(scope, receive, send)


class ArrivalRecorder:
    """Records Open Messaging messages and Graph sends that the emulators answered with 2xx."""

    def __init__(self, app: ASGIApp, state: BenchState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        kind = "genesys" if _GENESYS_MESSAGE.match(path) else "meta" if _GRAPH_SEND.match(path) else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        order = self.state.arrivals.take_order()
        chunks: list[bytes] = []
        status = 0

        async def capture_body() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def capture_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, capture_body, capture_status)
        if 200 <= status < 300:
            key, customer = _key_of(kind, b"".join(chunks))
            if key:
                self.state.arrivals.rows.append((order, arrived, kind, key, customer))


def _key_of(kind: str, raw: bytes) -> tuple[str, str]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    if kind == "genesys":
        channel = body.get("channel") or {}
        sender = channel.get("from") or {}
        return str(channel.get("messageId") or body.get("text") or ""), str(sender.get("id") or "")
    if "type" not in body:  # mark-as-read / typing indicator, not a message
        return "", ""
    content = body.get(body["type"]) or {}
    key = content.get("body") or content.get("caption") or content.get("id") or content.get("link") or ""
    return str(key), str(body.get("to") or body.get("recipient") or "")


def create_emulators_app(*, base_url: str, latency: float = 0.0, meta_statuses: bool = False) -> ASGIApp:
    """Both emulators mounted at `/meta` and `/genesys` of `base_url`, wrapped in the bench layers."""
    base = base_url.rstrip("/")
    meta = create_meta_app(
        base_url=base + "/meta", status_sequence=META_STATUSES if meta_statuses else (), history_limit=20_000
    )
    genesys = create_genesys_app(base_url=base + "/genesys", history_limit=20_000)
    state = BenchState(latency=latency)

    async def arrivals(request: Request) -> Response:
        after = int(request.query_params.get("after", "0"))
        rows = state.arrivals.since(after)
        body = {"next": state.arrivals.offset + len(state.arrivals.rows), "rows": rows}
        return Response(orjson.dumps(body), media_type="application/json")

    async def reset(_request: Request) -> JSONResponse:
        state.arrivals.reset()
        return JSONResponse({"reset": True, "next": state.arrivals.offset})

    async def set_latency(request: Request) -> JSONResponse:
        state.latency = max(0.0, float((await request.json())["ms"]) / 1000)
        return JSONResponse({"latency_ms": state.latency * 1000})

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "latency_ms": state.latency * 1000})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Mounted apps get no lifespan of their own: close their webhook clients here.
        yield
        await meta.state.sandbox.aclose()
        await genesys.state.sandbox.aclose()

    app = Starlette(
        routes=[
            Route("/_bench/arrivals", arrivals),
            Route("/_bench/reset", reset, methods=["POST"]),
            Route("/_bench/latency", set_latency, methods=["POST"]),
            Route("/_bench/health", health),
            Mount("/meta", app=meta),
            Mount("/genesys", app=genesys),
        ],
        lifespan=lifespan,
    )
    return ArrivalRecorder(UpstreamLatency(app, state), state)


def main(argv: list[str] | None = None) -> None:
    """Serve both emulators on 127.0.0.1:`--port` until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to Graph / Genesys API answers")
    parser.add_argument("--meta-statuses", action="store_true", help="post sent/delivered/read after each send")
    args = parser.parse_args(argv)
    app: Any = create_emulators_app(
        base_url=f"http://127.0.0.1:{args.port}", latency=args.latency_ms / 1000, meta_statuses=args.meta_statuses
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
        backlog=2048,
    )


if __name__ == "__main__":
    main()
