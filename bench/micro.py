"""Micro-benchmarks of the per-message building blocks, each beside the alternative it replaced.

    .venv/bin/python -m bench.micro            # PostgreSQL on 127.0.0.1:5432, ~30 s

Figures are CPU microseconds per call in this process (`time.process_time`), which a busy machine
disturbs far less than wall time; PostgreSQL's own CPU is read from `/proc` for its backends.

- database: the state statements of one message through the SQLAlchemy ORM session (as before)
  and as SQL text on the driver (`xypr.backends.db.hot`, as now), on a throw-away database; and
  one hot-path statement on an asyncpg connection borrowed through SQLAlchemy's pool (as before)
  and from the hot path's own asyncpg pool (`HotPool`, as now);
- HTTP: one JSON POST through httpx and through aiohttp (`xypr.core.http`), 16 at a time, against
  a minimal uvicorn server in a child process;
- AMQP: one confirmed publish of a webhook-sized message, 64 in flight, through aio-pika's
  `Exchange.publish` in a task of its own (as before) and through `RabbitBroker.publish` (straight on
  the AMQP channel, no task, as now), on RabbitMQ at 127.0.0.1:5672 in a throw-away namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import orjson
from sqlalchemy import select

from bench.processes import free_port
from bench.run import _tenant_file
from xypr.backends.broker.base import OutgoingMessage
from xypr.backends.broker.rabbitmq import RabbitBroker
from xypr.backends.db import create_database, migrate
from xypr.backends.db.engine import Database
from xypr.core.http import AiohttpPoster, create_http_client
from xypr.core.secretbox import SecretBox, generate_master_key
from xypr.state.models import Message
from xypr.state.service import (
    get_message,
    mark_sent,
    record_inbound,
    send_state,
    track_customer_message,
    upsert_conversation,
)
from xypr.tenants.service import create_tenant, parse_tenant_file
from xypr.topology import INBOUND_WHATSAPP, QUEUES

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
SERVER = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"id":"g-1","conversationId":"c-1"}'})
"""


async def per_call(name: str, calls: int, work: Callable[[int], Awaitable[None]], *, parallel: int = 1) -> float:
    """CPU µs per call of `work(i)` for i in range(calls), `parallel` at a time (after a warm-up)."""
    for i in range(min(50, calls)):
        await work(-1 - i)
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        async with gate:
            await work(i)

    started = time.process_time()
    await asyncio.gather(*(one(i) for i in range(calls)))
    micros = 1e6 * (time.process_time() - started) / calls
    print(f"  {name:<58} {micros:8.0f} µs CPU per call")
    return micros


async def database_figures(calls: int) -> dict[str, float]:
    """The inbound text's state work, ORM then SQL text, on a fresh database."""
    name = f"xypr_micro_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = create_database(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", pool_size=4)
    try:
        await migrate(database)
        tenant = await create_tenant(
            database, SecretBox(generate_master_key()), parse_tenant_file(_tenant_file("micro"))
        )
        print("database (one inbound text's state work; lower is better)")
        results = {
            "orm_track": await per_call(
                "ORM: upsert conversation + record message", calls, _orm_track(database, tenant.id)
            ),
            "sql_track": await per_call("SQL text: track_customer_message", calls, _sql_track(database, tenant.id)),
        }
        rows = await _message_ids(database, tenant.id)
        results["orm_send"] = await per_call(
            "ORM: read before the send, update after it", len(rows), _orm_send(database, tenant.id, rows)
        )
        results["sql_send"] = await per_call(
            "SQL text: send_state + mark_sent", len(rows), _sql_send(database, tenant.id, rows)
        )
        print("one hot-path statement with its connection borrow (lower is better)")
        results["borrow_sqlalchemy"] = await per_call(
            "asyncpg connection borrowed through SQLAlchemy's pool", calls, _borrow_sqlalchemy(database), parallel=4
        )
        results["borrow_hot_pool"] = await per_call(
            "asyncpg connection of the hot path's pool", calls, _borrow_hot_pool(database), parallel=4
        )
        return results
    finally:
        await database.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _orm_track(database: Database, tenant_id: str) -> Callable[[int], Awaitable[None]]:
    async def work(i: int) -> None:
        async with database.session() as session:
            conversation = await upsert_conversation(
                session, tenant_id=tenant_id, wa_id=f"o{i % 300}", customer_name="n"
            )
            await record_inbound(session, conversation=conversation, wamid=f"orm.{i}", kind="text", text="hello")

    return work


def _sql_track(database: Database, tenant_id: str) -> Callable[[int], Awaitable[None]]:
    async def work(i: int) -> None:
        await track_customer_message(
            database,
            tenant_id=tenant_id,
            wa_id=f"s{i % 300}",
            wamid=f"sql.{i}",
            kind="text",
            text="hello",
            customer_name="n",
        )

    return work


async def _message_ids(database: Database, tenant_id: str) -> list[str]:
    async with database.session() as session:
        return list(await session.scalars(select(Message.id).where(Message.tenant_id == tenant_id)))


def _orm_send(database: Database, tenant_id: str, rows: list[str]) -> Callable[[int], Awaitable[None]]:
    async def work(i: int) -> None:
        message_id = rows[i % len(rows)]
        async with database.session() as session:
            await get_message(session, tenant_id=tenant_id, message_id=message_id)
        async with database.session() as session:
            tracked = await get_message(session, tenant_id=tenant_id, message_id=message_id)
            if tracked is not None:
                tracked.status, tracked.genesys_message_id = "sent", f"g-orm-{i}"

    return work


def _sql_send(database: Database, tenant_id: str, rows: list[str]) -> Callable[[int], Awaitable[None]]:
    async def work(i: int) -> None:
        message_id = rows[i % len(rows)]
        await send_state(database, tenant_id=tenant_id, message_id=message_id)
        await mark_sent(database, tenant_id=tenant_id, message_id=message_id, genesys_message_id=f"g-sql-{i}")

    return work


_ONE_ROW = "SELECT id FROM messages WHERE id = $1"


def _borrow_sqlalchemy(database: Database) -> Callable[[int], Awaitable[None]]:
    """How the hot path borrowed its connection until 2026-12-03."""

    async def work(i: int) -> None:
        async with database.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.fetchrow(_ONE_ROW, f"m-{i}")

    return work


def _borrow_hot_pool(database: Database) -> Callable[[int], Awaitable[None]]:
    async def work(i: int) -> None:
        async with database.sql() as sql:
            await sql.fetchrow(_ONE_ROW, f"m-{i}")

    return work


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    """The minimal upstream in a child process, answering once it is up."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="xypr-micro-"))
    (folder / "micro_server.py").write_text(SERVER)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "micro_server:app", "--port", str(port), "--log-level", "warning",
         "--loop", "uvloop", "--http", "httptools"],
        cwd=folder,
    )  # fmt: skip
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return server, port


async def http_figures(calls: int, port: int) -> dict[str, float]:
    """One JSON POST, 16 in flight, httpx then aiohttp."""
    url = f"http://127.0.0.1:{port}/api/v2/conversations/messages/i/inbound/open/message"
    body = orjson.dumps({"type": "Text", "text": "hello", "direction": "Inbound"})
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    print("HTTP (one Open Messaging POST, 16 in flight; lower is better)")
    async with create_http_client() as client:

        async def with_httpx(_: int) -> None:
            answer = await client.post(url, content=body, headers=headers)
            orjson.loads(answer.content)

        via_httpx = await per_call("httpx", calls, with_httpx, parallel=16)
    poster = AiohttpPoster()

    async def with_aiohttp(_: int) -> None:
        answer = await poster.post_json(url, body, headers=headers)
        orjson.loads(answer.content)

    via_aiohttp = await per_call("aiohttp (xypr.core.http.AiohttpPoster)", calls, with_aiohttp, parallel=16)
    await poster.aclose()
    return {"httpx": via_httpx, "aiohttp": via_aiohttp}


async def amqp_figures(calls: int) -> dict[str, float]:
    """One confirmed publish, 64 in flight: aio-pika's `Exchange.publish`, then `RabbitBroker.publish`."""
    namespace = f"micro-{uuid.uuid4().hex[:8]}"
    broker = RabbitBroker(AMQP, namespace=namespace, partitions=4)
    await broker.connect()
    body = b'{"object":"whatsapp_business_account","entry":[' + b"0" * 1200 + b"]}"
    print("AMQP (one confirmed publish, 64 in flight; lower is better)")
    try:
        exchange = broker._exchanges[INBOUND_WHATSAPP]

        async def with_aio_pika(i: int) -> None:
            message = aio_pika.Message(
                body,
                headers={"tenant": "t", "x-xypr-key": f"k{i}"},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=uuid.uuid4().hex,
                timestamp=time.time(),
            )
            # As `RabbitBroker.publish` did: each publish in a task of its own, under the confirm timeout.
            async with asyncio.timeout(5.0), asyncio.TaskGroup() as group:
                group.create_task(exchange.publish(message, routing_key=f"k{i}"))

        async def with_broker(i: int) -> None:
            await broker.publish(INBOUND_WHATSAPP, [OutgoingMessage(body=body, key=f"k{i}", headers={"tenant": "t"})])

        via_aio_pika = await per_call(
            "aio-pika Exchange.publish in a task (as before)", calls, with_aio_pika, parallel=64
        )
        via_broker = await per_call(
            "RabbitBroker.publish, on the AMQP channel (as now)", calls, with_broker, parallel=64
        )
    finally:
        await broker.close()
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            for queue in QUEUES:
                for partition in range(4):
                    await channel.queue_delete(f"{namespace}.{queue}.p{partition}")
                await channel.exchange_delete(f"{namespace}.{queue}")
            await channel.queue_delete(f"{namespace}.dead-letters")
            await channel.exchange_delete(f"{namespace}.dead-letters")
    return {"aio_pika_publish": via_aio_pika, "broker_publish": via_broker}


async def measure(calls: int, port: int) -> None:
    """Every figure, then the ratios."""
    figures = {**await database_figures(calls), **await http_figures(calls, port), **await amqp_figures(calls)}
    track, send = figures["orm_track"] / figures["sql_track"], figures["orm_send"] / figures["sql_send"]
    borrow, post = figures["borrow_sqlalchemy"] / figures["borrow_hot_pool"], figures["httpx"] / figures["aiohttp"]
    publish = figures["aio_pika_publish"] / figures["broker_publish"]
    print(f"ratios (before / now): inbound state {track:.1f}x, send state {send:.1f}x, "
          f"hot statement with its borrow {borrow:.1f}x, HTTP POST {post:.1f}x, "
          f"AMQP publish {publish:.1f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per figure (default 2000)")
    args = parser.parse_args()
    server, port = start_server()
    try:
        asyncio.run(measure(args.calls, port))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
