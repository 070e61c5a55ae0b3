"""The load generator: signed webhook POSTs at a fixed offered rate (open loop) or at saturation (closed loop).

Runs in its own process (`python -m bench.load SPEC.json`). Python HTTP clients cost more CPU per
request than the server under test, so requests go out on a minimal keep-alive HTTP/1.1 client on
asyncio streams (uvloop), with every body built and signed before the clock starts. The generator's
own ceiling is measured against a null server in the same run (`bench.baselines null`).

- Open loop: request i is due at t0 + i / rate whatever happened to the earlier ones; at most
  `connections` are in flight. A request that cannot start within `max_lag` of its due time is
  dropped (counted), one that starts more than `LATE_AFTER` seconds behind is counted late.
- Closed loop: `connections` lanes send back to back until `duration` runs out or the plan ends.
- Either way one sender never has two requests in flight: its next message waits for the previous
  acknowledgement, so "the order in which Xypr accepted them" is unambiguous for the order check.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, Field

__all__ = [
    "DROPPED",
    "FAILED",
    "LATE_AFTER",
    "NOT_SENT",
    "HttpConnection",
    "LoadSpec",
    "LoadTenant",
    "Planned",
    "build_plan",
    "customer_wa_id",
    "genesys_text_webhook",
    "main",
    "run_load",
    "sign_genesys",
    "sign_meta",
    "whatsapp_message_webhook",
]

LATE_AFTER = 0.010
"""A request sent more than this many seconds after its due time is late (open loop)."""

REQUEST_TIMEOUT = 30.0

# Status codes for requests that never got an HTTP answer.
NOT_SENT = -2  # closed loop: the duration ran out first (not offered)
DROPPED = -1  # open loop: could not start within max_lag (offered, not sent)
FAILED = 0  # connection error or timeout


class LoadTenant(BaseModel):
    """What the generator needs of the bench tenant to address and sign its webhooks."""

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    app_secret: str
    integration_id: str
    webhook_secret: str


class LoadSpec(BaseModel):
    """One load run, written by `bench.run` and read by the generator process."""

    kind: Literal["whatsapp", "genesys"] = "whatsapp"
    targets: list[str] = Field(min_length=1, description="base URLs; connections are spread over them")
    mode: Literal["open", "closed"] = "open"
    rate: float = Field(default=100.0, gt=0, description="requests/s offered (open loop)")
    duration: float = Field(default=5.0, gt=0)
    count: int | None = Field(default=None, ge=1, description="messages planned; default rate * duration")
    connections: int = Field(default=64, ge=1, le=1024)
    max_lag: float = Field(default=1.0, gt=0)
    pattern: Literal["round_robin", "bursts", "once"] = "round_robin"
    senders: int = Field(default=1000, ge=1)
    burst: int = Field(default=20, ge=1)
    sender_offset: int = Field(default=0, ge=0, description="first customer number, so runs do not share senders")
    media_ratio: float = Field(default=0.0, ge=0, le=1)
    media: list[dict[str, str]] = Field(default_factory=list, description="Meta media ids with mime and sha256")
    run_id: str
    tenant: LoadTenant
    out: str
    watch: dict[int, str] = Field(default_factory=dict, description="pid → role whose CPU the run samples")


@dataclass(frozen=True, slots=True)
class Planned:
    """One request of the plan: who sends it, its place in that sender's sequence, its key and bytes."""

    index: int
    sender: int
    seq: int
    key: str
    raw: bytes


# -- payloads ----------------------------------------------------------------------------------------


def customer_wa_id(sender: int) -> str:
    """The WhatsApp id (phone digits) of bench customer number `sender`."""
    return str(15550000000000 + sender)


def sign_meta(app_secret: str, raw: bytes) -> str:
    """`X-Hub-Signature-256` as Meta sends it: `sha256=<hex HMAC-SHA256(app secret, body)>`."""
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def sign_genesys(webhook_secret: str, raw: bytes) -> str:
    """`X-Hub-Signature-256` as Genesys sends it: `sha256=<base64 HMAC-SHA256(secret, body)>`."""
    return "sha256=" + base64.b64encode(hmac.new(webhook_secret.encode(), raw, hashlib.sha256).digest()).decode()


def whatsapp_message_webhook(
    tenant: LoadTenant,
    *,
    wa_id: str,
    wamid: str,
    timestamp: int,
    text: str,
    media: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A one-message Meta webhook shaped like contracts/meta/webhook-text.json (or webhook-image.json)."""
    message: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(timestamp)}
    if media is None:
        message.update({"type": "text", "text": {"body": text}})
    else:
        message.update(
            {
                "type": "image",
                "image": {
                    "caption": text,
                    "mime_type": media["mime_type"],
                    "sha256": media["sha256"],
                    "id": media["id"],
                },
            }
        )
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": tenant.waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": tenant.display_phone_number,
                                "phone_number_id": tenant.phone_number_id,
                            },
                            "contacts": [{"profile": {"name": "Bench Customer"}, "wa_id": wa_id}],
                            "messages": [message],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def genesys_text_webhook(tenant: LoadTenant, *, to: str, message_id: str, text: str, moment: str) -> dict[str, Any]:
    """An agent's text, shaped like contracts/genesys/captured-openmessaging-outbound-text.json."""
    return {
        "id": message_id,
        "channel": {
            "id": tenant.integration_id,
            "messageId": message_id,
            "platform": "Open",
            "type": "Private",
            "to": {"id": to, "idType": "Phone"},
            "from": {"nickname": "Bench Agent", "id": tenant.integration_id, "idType": "Opaque"},
            "time": moment,
        },
        "direction": "Outbound",
        "originatingEntity": "Human",
        "type": "Text",
        "text": text,
        "content": [],
        "reasons": [],
        "relatedMessages": [],
    }


def _request(path: str, raw_body: bytes, signature: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: xypr-bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw_body)}\r\n"
        f"X-Hub-Signature-256: {signature}\r\n\r\n"
    )
    return head.encode() + raw_body


def _sender_of(spec: LoadSpec, index: int) -> int:
    if spec.pattern == "once":
        return spec.sender_offset + index
    if spec.pattern == "bursts":
        return spec.sender_offset + (index // spec.burst) % spec.senders
    return spec.sender_offset + index % spec.senders


def build_plan(spec: LoadSpec) -> list[Planned]:
    """Every request of the run, built and signed up front (keys are unique per run)."""
    count = spec.count or max(1, round(spec.rate * spec.duration))
    now = int(time.time())
    moment = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))
    seqs: dict[int, int] = {}
    plan: list[Planned] = []
    media_every = round(1 / spec.media_ratio) if spec.media_ratio > 0 and spec.media else 0
    for index in range(count):
        sender = _sender_of(spec, index)
        seq = seqs.get(sender, 0)
        seqs[sender] = seq + 1
        text = f"bench {spec.run_id} message {index} from {sender} #{seq}"
        if spec.kind == "whatsapp":
            key = "wamid." + base64.b64encode(f"bench:{spec.run_id}:{index}:{sender}:{seq}".encode()).decode()
            is_media = media_every and index % media_every == 0
            media = spec.media[(index // media_every) % len(spec.media)] if is_media else None
            document = whatsapp_message_webhook(
                spec.tenant, wa_id=customer_wa_id(sender), wamid=key, timestamp=now, text=text, media=media
            )
            raw_body = orjson.dumps(document)
            raw = _request("/webhook/whatsapp", raw_body, sign_meta(spec.tenant.app_secret, raw_body))
        else:
            key = text
            message_id = hashlib.md5(f"{spec.run_id}:{index}".encode(), usedforsecurity=False).hexdigest()
            document = genesys_text_webhook(
                spec.tenant, to=customer_wa_id(sender), message_id=message_id, text=text, moment=moment
            )
            raw_body = orjson.dumps(document)
            raw = _request("/webhook/genesys", raw_body, sign_genesys(spec.tenant.webhook_secret, raw_body))
        plan.append(Planned(index, sender, seq, key, raw))
    return plan


# -- the HTTP client ---------------------------------------------------------------------------------


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: write a whole request, read one whole response."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect (asyncio sets TCP_NODELAY on its TCP transports)."""
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    async def close(self) -> None:
        """Close the socket; the next request reconnects."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def request(self, raw: bytes) -> int:
        """Send `raw` (a complete request) and return the response status once the body is read."""
        if self._writer is None:
            await self.open()
        reader, writer = self._reader, self._writer
        assert reader is not None
        assert writer is not None
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)])
            if length:
                await reader.readexactly(length)
        elif b"\r\ntransfer-encoding: chunked" in lower:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        if b"\r\nconnection: close" in lower:
            await self.close()
        return status


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only http://host:port targets are supported, not {url!r}")
    return parts.hostname, parts.port or 80


# -- the two loops -----------------------------------------------------------------------------------


class _Results:
    """Per-request outcome columns, in plan order."""

    def __init__(self, size: int) -> None:
        self.due: list[float | None] = [None] * size
        self.sent: list[float | None] = [None] * size
        self.latency: list[float | None] = [None] * size
        self.status: list[int] = [NOT_SENT] * size
        self.errors: dict[str, int] = {}

    def failed(self, index: int, exc: BaseException) -> None:
        self.status[index] = FAILED
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1


async def _exchange(connection: HttpConnection, item: Planned, results: _Results) -> None:
    results.sent[item.index] = time.time()
    started = time.perf_counter()  # uvloop's loop.time() only ticks in milliseconds
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            results.status[item.index] = await connection.request(item.raw)
        results.latency[item.index] = time.perf_counter() - started
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        results.failed(item.index, exc)
        await connection.close()


async def _open_connections(targets: list[tuple[str, int]], count: int) -> list[HttpConnection]:
    connections = [HttpConnection(*targets[i % len(targets)]) for i in range(count)]
    await asyncio.gather(*(connection.open() for connection in connections))
    return connections


async def open_loop(spec: LoadSpec, plan: list[Planned], targets: list[tuple[str, int]]) -> _Results:
    """Send request i at t0 + i / rate, whatever the earlier ones are doing (bounded in flight)."""
    loop = asyncio.get_running_loop()
    results = _Results(len(plan))
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for connection in await _open_connections(targets, spec.connections):
        idle.put_nowait(connection)
    previous: dict[int, asyncio.Future[None]] = {}
    tasks: list[asyncio.Task[None]] = []

    async def send(item: Planned, due: float, before: asyncio.Future[None] | None, done: asyncio.Future[None]) -> None:
        try:
            deadline = due + spec.max_lag
            try:
                async with asyncio.timeout_at(deadline):
                    if before is not None:
                        await asyncio.shield(before)  # this sender's previous message is acknowledged first
                    connection = await idle.get()
            except TimeoutError:
                results.status[item.index] = DROPPED
                return
            try:
                await _exchange(connection, item, results)
            finally:
                idle.put_nowait(connection)
        finally:
            if before is not None and not before.done():
                # Dropped while the previous message is still in flight: the next one waits for that one.
                before.add_done_callback(lambda _previous: done.set_result(None))
            else:
                done.set_result(None)

    wall_offset = time.time() - loop.time()
    start = loop.time() + 0.05
    for item in plan:
        due = start + item.index / spec.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        results.due[item.index] = due + wall_offset
        done = loop.create_future()
        before = previous.get(item.sender)
        previous[item.sender] = done
        waiting = before if before is not None and not before.done() else None
        tasks.append(loop.create_task(send(item, due, waiting, done)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        await idle.get_nowait().close()
    return results


async def closed_loop(spec: LoadSpec, plan: list[Planned], targets: list[tuple[str, int]]) -> _Results:
    """`connections` lanes, each sending its senders' messages back to back until time runs out."""
    loop = asyncio.get_running_loop()
    results = _Results(len(plan))
    lanes: list[list[Planned]] = [[] for _ in range(spec.connections)]
    for item in plan:
        lanes[item.sender % spec.connections].append(item)
    connections = await _open_connections(targets, spec.connections)
    stop_at = loop.time() + spec.duration

    async def lane(items: list[Planned], connection: HttpConnection) -> None:
        for item in items:
            if loop.time() >= stop_at:
                return
            await _exchange(connection, item, results)

    await asyncio.gather(*(lane(items, connection) for items, connection in zip(lanes, connections, strict=True)))
    for connection in connections:
        await connection.close()
    return results


async def run_load(spec: LoadSpec) -> dict[str, Any]:
    """Build the plan, run it, and return the per-request columns plus the generator's own CPU use."""
    from bench.processes import sample

    targets = [_address(url) for url in spec.targets]
    plan = build_plan(spec)
    # The CPU window is the load itself: not the interpreter start-up nor building the plan.
    cpu_start = sample(spec.watch)
    cpu_before, wall_before = time.process_time(), time.time()
    if spec.mode == "open":
        results = await open_loop(spec, plan, targets)
    else:
        results = await closed_loop(spec, plan, targets)
    cpu, wall = time.process_time() - cpu_before, time.time() - wall_before
    cpu_end = sample(spec.watch)
    return {
        "mode": spec.mode,
        "kind": spec.kind,
        "started": wall_before,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "cpu_start": cpu_start.as_json(),
        "cpu_end": cpu_end.as_json(),
        "errors": results.errors,
        "records": {
            "key": [item.key for item in plan],
            "sender": [item.sender for item in plan],
            "seq": [item.seq for item in plan],
            "due": results.due,
            "sent": results.sent,
            "latency": results.latency,
            "status": results.status,
        },
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.load SPEC.json`: run the spec and write its results to `spec.out`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="a LoadSpec as JSON")
    args = parser.parse_args(argv)
    spec = LoadSpec.model_validate_json(args.spec.read_bytes())
    try:
        import uvloop

        outcome = uvloop.run(run_load(spec))
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        outcome = asyncio.run(run_load(spec))
    Path(spec.out).write_bytes(orjson.dumps(outcome))
    sys.exit(0)


if __name__ == "__main__":
    main()
