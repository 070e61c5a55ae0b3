"""Ceilings measured in the same run as the bridge, so its figures can be read as ratios on a noisy machine.

- `bare`: an ASGI app that drains the body and answers 200, on the bridge's server stack (uvicorn,
  uvloop, httptools): the HTTP ceiling of a webhook.
- `null`: a raw asyncio protocol that answers every request without parsing HTTP: what the load
  generator itself can push (its own ceiling).
- `rabbitmq-consume` / `rabbitmq-publish`: publish-with-confirm → consume → ack through RabbitMQ
  quorum queues with raw aio-pika, publisher and consumer in separate processes like the webhook
  and a worker: the broker ceiling of the production backend.
- `sqlite`: the same round trip through the embedded `SqliteQueueBroker`, publisher and consumer in
  one process as in `xypr run`: the broker ceiling of the embedded backend.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["bare_app", "main"]

_ACCEPTED = b'{"status":"accepted","events":1}'
_NULL_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(_ACCEPTED) + _ACCEPTED
)


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Drain the request body, answer 200 with a small JSON body: nothing else."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_ACCEPTED))],
        }
    )
    await send({"type": "http.response.body", "body": _ACCEPTED})


def serve_bare(port: int) -> None:
    """Serve `bare_app` exactly as `xypr serve` serves the bridge."""
    import uvicorn

    uvicorn.run(
        bare_app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


class _NullProtocol(asyncio.Protocol):
    """Answers each complete request (head + Content-Length body) with a canned 200."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, hence no isinstance check.
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(_NULL_RESPONSE)


def serve_null(port: int) -> None:
    """Serve the null protocol on uvloop until interrupted."""
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_NullProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve())


# -- broker round trips ------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


async def _connect(url: str, within: float = 90.0) -> Any:
    """An aio-pika connection, retried for up to `within` seconds (the shared broker stalls at times)."""
    import aio_pika

    deadline = time.monotonic() + within
    while True:
        try:
            return await aio_pika.connect(url, timeout=10)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


def _queue_names(namespace: str, partitions: int) -> list[str]:
    return [f"{namespace}.baseline.p{p}" for p in range(partitions)]


_QUORUM = {"x-queue-type": "quorum"}


async def rabbitmq_consume(
    url: str, namespace: str, partitions: int, expect: int, prefetch: int, idle: float
) -> dict[str, Any]:
    """Consume and ack until `expect` messages arrived (or none for `idle` s); round-trip latencies."""

    connection = await _connect(url)
    arrivals: list[float] = []
    latencies: list[float] = []
    done = asyncio.Event()
    try:
        queues = []
        for name in _queue_names(namespace, partitions):
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.declare_queue(name, durable=True, arguments=_QUORUM)
            queues.append(queue)

        async def on_message(message: Any) -> None:
            now = time.time()
            latencies.append(now - float(message.body[:20]))
            arrivals.append(now)
            await message.ack()
            if len(arrivals) >= expect:
                done.set()

        for queue in queues:
            await queue.consume(on_message)
        print("ready", flush=True)
        last = -1
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=idle)
            if len(arrivals) == last:
                break  # nothing for `idle` seconds: the publisher is done or gone
            last = len(arrivals)
    finally:
        await connection.close()
    return {"consumed": len(arrivals), "first": min(arrivals, default=None), "last": max(arrivals, default=None),
            "round_trip": _percentiles(latencies)}  # fmt: skip


async def rabbitmq_publish(url: str, namespace: str, partitions: int, count: int, concurrency: int) -> dict[str, Any]:
    """`concurrency` publishers, each publishing one persistent message at a time and awaiting its confirm."""
    import aio_pika

    connection = await _connect(url)
    confirms: list[float] = []
    names = _queue_names(namespace, partitions)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for name in names:
            await channel.declare_queue(name, durable=True, arguments=_QUORUM)
        padding = b"x" * 600  # the size of a webhook event
        counter = iter(range(count))
        started = time.time()

        async def publisher() -> None:
            for index in counter:
                begin = time.time()
                body = b"%20.6f" % begin + padding
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=names[index % len(names)])
                confirms.append(time.time() - begin)

        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        ended = time.time()
    finally:
        await connection.close()
    return {"published": len(confirms), "first": started, "last": ended, "confirm": _percentiles(confirms)}


async def rabbitmq_delete(url: str, namespace: str, partitions: int) -> None:
    """Delete the baseline's own queues (never anyone else's)."""

    connection = await _connect(url)
    try:
        channel = await connection.channel()
        for name in _queue_names(namespace, partitions):
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
    finally:
        await connection.close()


async def sqlite_round_trip(count: int, concurrency: int, prefetch: int, within: float) -> dict[str, Any]:
    """Publish (one committed transaction each) → consume → ack through the embedded broker, one process."""
    from xypr.backends.broker.base import Delivery, OutgoingMessage
    from xypr.backends.broker.embedded import SqliteQueueBroker
    from xypr.topology import INBOUND_WHATSAPP

    with tempfile.TemporaryDirectory(prefix="xypr-bench-sqlite-") as folder:
        broker = SqliteQueueBroker(Path(folder) / "queue.sqlite3")
        await broker.connect()
        latencies: list[float] = []
        arrivals: list[float] = []
        confirms: list[float] = []
        done = asyncio.Event()

        async def on_delivery(delivery: Delivery) -> None:
            now = time.time()
            latencies.append(now - float(delivery.body[:20]))
            arrivals.append(now)
            await delivery.ack()
            if len(arrivals) >= count:
                done.set()

        consumer = await broker.consume(INBOUND_WHATSAPP, on_delivery, prefetch=prefetch)
        padding = b"x" * 600
        counter = iter(range(count))
        started = time.time()

        async def publisher() -> None:
            for index in counter:
                begin = time.time()
                body = b"%20.6f" % begin + padding
                await broker.publish(INBOUND_WHATSAPP, [OutgoingMessage(body=body, key=f"customer-{index}")])
                confirms.append(time.time() - begin)

        try:
            await asyncio.gather(*(publisher() for _ in range(concurrency)))
            published_at = time.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=within)
        finally:
            await consumer.stop()
            await broker.close()
    return {"published": len(confirms), "consumed": len(arrivals), "first": started, "published_by": published_at,
            "last": max(arrivals, default=None), "confirm": _percentiles(confirms),
            "round_trip": _percentiles(latencies)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.baselines {bare,null,rabbitmq-consume,rabbitmq-publish,rabbitmq-delete,sqlite} …`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("bare", "null"):
        sub = commands.add_parser(name)
        sub.add_argument("--port", type=int, required=True)
    for name in ("rabbitmq-consume", "rabbitmq-publish", "rabbitmq-delete"):
        sub = commands.add_parser(name)
        sub.add_argument("--url", required=True)
        sub.add_argument("--namespace", default=f"xypr-bench-{uuid.uuid4().hex[:8]}")
        sub.add_argument("--partitions", type=int, default=4)
        sub.add_argument("--count", type=int, default=5000)
        sub.add_argument("--concurrency", type=int, default=64)
        sub.add_argument("--prefetch", type=int, default=64)
        sub.add_argument("--idle", type=float, default=10.0)
        sub.add_argument("--out", type=Path)
    sub = commands.add_parser("sqlite")
    sub.add_argument("--count", type=int, default=2000)
    sub.add_argument("--concurrency", type=int, default=64)
    sub.add_argument("--prefetch", type=int, default=64)
    sub.add_argument("--timeout", type=float, default=60.0)
    sub.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    if args.command == "bare":
        serve_bare(args.port)
        return
    if args.command == "null":
        serve_null(args.port)
        return
    import uvloop

    outcome: dict[str, Any] | None
    cpu = time.process_time()
    if args.command == "rabbitmq-consume":
        outcome = uvloop.run(
            rabbitmq_consume(args.url, args.namespace, args.partitions, args.count, args.prefetch, args.idle)
        )
    elif args.command == "rabbitmq-publish":
        outcome = uvloop.run(rabbitmq_publish(args.url, args.namespace, args.partitions, args.count, args.concurrency))
    elif args.command == "rabbitmq-delete":
        uvloop.run(rabbitmq_delete(args.url, args.namespace, args.partitions))
        outcome = None
    else:
        outcome = uvloop.run(sqlite_round_trip(args.count, args.concurrency, args.prefetch, args.timeout))
    if outcome is not None:
        outcome["cpu_seconds"] = time.process_time() - cpu
        text = json.dumps(outcome)
        if args.out:
            args.out.write_text(text)
        else:
            print(text)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
