"""Meta and Genesys emulators in their own process, with timed fault windows and a delivery record.

`python -m tests.support.fault_upstreams --port P` serves the Graph API emulator under `/meta` and
the Genesys Cloud emulator under `/genesys` (the sandbox's own apps), plus what the fault suite needs:

- `POST /_faults/upstream` `{"target": "genesys"|"meta", "phases": [{"seconds": 5, "status": 503},
  {"seconds": 5, "status": 429, "retry_after": 2}, ...]}` makes the target's message API answer each
  phase's error for that long, phases back to back from now. Genesys: every Open Messaging API call
  (`/api/v2/conversations/messages/…`), with Genesys' error bodies (429 with `Retry-After`). Meta:
  every Graph `…/messages` send, with the documented error of `code` (500 with code 131000, 400 with
  code 130429 "Rate limit hit").
- `POST /_faults/latency` `{"seconds": 0.3}`: every call the fault windows cover (Genesys' Open
  Messaging API, Graph `…/messages`) is handled (accepted, recorded) at once but answered that much
  later, like the Genesys sandbox's `/_sandbox/latency`; Meta's `sent` status follows the answer. 0: at once.
- `POST /_faults/window` `{"phone_number_id", "wa_id"}` opens the customer's 24 h window at the
  emulated Meta (the suite posts customer webhooks itself, so the emulator did not see them).
- `GET /_faults/deliveries?after=N`: every Open Messaging message and Graph send answered 2xx, in
  arrival order: `[order, wall time, "genesys"|"meta", text]`; `answering`: calls accepted and not
  answered yet (latency).
- `GET /_faults/health`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xypr.sandbox.genesys.app import create_genesys_app
from xypr.sandbox.genesys.errors import injected
from xypr.sandbox.meta.app import create_meta_app
from xypr.sandbox.meta.errors import documented_error

__all__ = ["create_fault_upstreams", "main"]

_GENESYS_API = re.compile(r"^/genesys/api/v2/conversations/messages/")
_GENESYS_MESSAGE = re.compile(r"^/genesys/api/v2/conversations/messages/[^/]+/inbound/open/message$")
_GRAPH_SEND = re.compile(r"^/meta/v\d+\.\d+/[^/]+/messages$")


@dataclass(slots=True)
class Phase:
    """One stretch of a fault window: `status` (and Meta `code`, Genesys `retry_after`) until `until`."""

    until: float
    status: int
    code: int | None = None
    retry_after: int | None = None


@dataclass(slots=True)
class FaultState:
    """Fault windows per target and the deliveries seen so far."""

    windows: dict[str, list[Phase]] = field(default_factory=dict)
    deliveries: list[tuple[int, float, str, str]] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    latency: float = 0.0
    answering: int = 0  # accepted calls whose answer is being held back (latency)

    def current(self, target: str) -> Phase | None:
        """The phase of `target`'s fault window in force now, if any."""
        now = time.monotonic()
        return next((phase for phase in self.windows.get(target, []) if now < phase.until), None)


class FaultLayer:
    """Answers the upstream APIs' errors during fault windows; records 2xx message deliveries."""

    def __init__(self, app: ASGIApp, state: FaultState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        target = "genesys" if _GENESYS_API.match(path) else "meta" if _GRAPH_SEND.match(path) else None
        if target is None:
            await self.app(scope, receive, send)
            return
        phase = self.state.current(target)
        if phase is not None:
            self.state.refused[target] = self.state.refused.get(target, 0) + 1
            await _refuse(target, phase, send)
            return
        recorded = target == "meta" or bool(_GENESYS_MESSAGE.match(path))
        latency = self.state.latency
        if not recorded and not latency:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        held: list[Message] = []
        status = 0

        async def capture_body() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def capture_answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            if latency:
                held.append(message)  # answered once the delay has passed
            else:
                await send(message)

        await self.app(scope, capture_body, capture_answer)
        if recorded and 200 <= status < 300:
            text = _text_of(target, b"".join(chunks))
            if text:
                self.state.deliveries.append((len(self.state.deliveries), time.time(), target, text))
        if latency:
            # Accepted and recorded: a caller that gives up now has still sent the message.
            self.state.answering += 1
            try:
                await asyncio.sleep(latency)
            finally:
                self.state.answering -= 1
            for message in held:
                await send(message)


async def _refuse(target: str, phase: Phase, send: Send) -> None:
    if target == "genesys":
        error = injected(phase.status, phase.retry_after)
        status, body, headers = error.status, error.body(), dict(error.headers)
    else:
        graph = documented_error(phase.code or 131000, http_status=phase.status)
        status, body, headers = graph.http_status, graph.body(), {}
    raw = orjson.dumps(body)
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


def _text_of(target: str, raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(body, dict):
        return ""
    if target == "genesys":
        return str(body.get("text") or "")
    if body.get("type") != "text":  # mark-as-read, typing indicator, media
        return ""
    return str((body.get("text") or {}).get("body") or "")


def create_fault_upstreams(*, base_url: str) -> ASGIApp:
    """Both emulators under `/meta` and `/genesys` of `base_url`, behind the fault layer."""
    base = base_url.rstrip("/")
    # Meta posts a `sent` status after each send (the bridge turns it into a receipt for Genesys).
    meta = create_meta_app(base_url=base + "/meta", status_sequence=("sent",), webhook_attempts=5)
    genesys = create_genesys_app(base_url=base + "/genesys")
    state = FaultState()

    async def upstream(request: Request) -> JSONResponse:
        body = await request.json()
        start = time.monotonic()
        phases = []
        for item in body["phases"]:
            start += float(item["seconds"])
            phases.append(Phase(start, int(item["status"]), item.get("code"), item.get("retry_after")))
        state.windows[str(body["target"])] = phases
        return JSONResponse({"target": body["target"], "phases": len(phases)})

    async def latency(request: Request) -> JSONResponse:
        seconds = float((await request.json())["seconds"])
        state.latency = seconds
        # Meta's `sent` status comes after the send was answered, not while the sender still waits.
        sandbox: Any = meta.state.sandbox
        sandbox.status_delay = 0.05 + seconds
        return JSONResponse({"seconds": seconds})

    async def window(request: Request) -> JSONResponse:
        body = await request.json()
        sandbox: Any = meta.state.sandbox
        sandbox.last_inbound[(str(body["phone_number_id"]), str(body["wa_id"]))] = sandbox.now()
        return JSONResponse({"open": True})

    async def deliveries(request: Request) -> Response:
        after = int(request.query_params.get("after", "0"))
        payload = {"rows": state.deliveries[after:], "refused": state.refused, "answering": state.answering}
        return Response(orjson.dumps(payload), media_type="application/json")

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/_faults/upstream", upstream, methods=["POST"]),
            Route("/_faults/latency", latency, methods=["POST"]),
            Route("/_faults/window", window, methods=["POST"]),
            Route("/_faults/deliveries", deliveries),
            Route("/_faults/health", health),
            Mount("/meta", app=meta),
            Mount("/genesys", app=genesys),
        ],
    )
    return FaultLayer(app, state)


def main(argv: list[str] | None = None) -> None:
    """Serve the emulators on 127.0.0.1:`--port` until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app: Any = create_fault_upstreams(base_url=f"http://127.0.0.1:{args.port}")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
