"""The hot-path cost of retry parking: the parked-key lookup every event makes before it is handled.

    .venv/bin/python -m bench.parking            # PostgreSQL on 127.0.0.1:5432 and a SQLite file, ~10 s

For each database: CPU µs per call in this process (`time.process_time`) and wall µs per call, one at a
time, of `ParkingStore.is_parked` for a key with nothing parked (the common case), beside the state work of
one inbound text (`track_customer_message`) for scale. PostgreSQL's own CPU is not included.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bench.micro import ADMIN
from bench.run import _tenant_file
from xypr.backends.db import create_database, migrate
from xypr.backends.db.engine import Database
from xypr.core.secretbox import SecretBox, generate_master_key
from xypr.retry_parking import ParkingStore
from xypr.state.service import track_customer_message
from xypr.tenants.service import create_tenant, parse_tenant_file
from xypr.topology import SEND_GENESYS


async def _per_call(name: str, calls: int, work: Callable[[int], Awaitable[None]]) -> None:
    for i in range(min(50, calls)):
        await work(-1 - i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(calls):
        await work(i)
    cpu_us = 1e6 * (time.process_time() - cpu) / calls
    wall_us = 1e6 * (time.perf_counter() - wall) / calls
    print(f"  {name:<52} {cpu_us:7.0f} µs CPU {wall_us:7.0f} µs wall per call")


async def _figures(database: Database, calls: int) -> None:
    await migrate(database)
    store = ParkingStore(database)
    # Something parked on other keys, as during an outage: the lookup is still one primary-key probe.
    for n in range(100):
        await store.park(
            SEND_GENESYS, f"held-{n}", b"{}", {}, first_try_at=time.time(), attempts=1, next_attempt_at=0, error="e"
        )
    tenant = await create_tenant(database, SecretBox(generate_master_key()), parse_tenant_file(_tenant_file("park")))

    async def lookup(i: int) -> None:
        await store.is_parked(SEND_GENESYS, f"{tenant.id}:1650555{i % 1000:04d}")

    async def track(i: int) -> None:
        await track_customer_message(
            database,
            tenant_id=tenant.id,
            wa_id=f"s{i % 300}",
            wamid=f"w.{i}",
            kind="text",
            text="hi",
            customer_name="n",
        )

    await _per_call("is_parked (nothing parked for the key)", calls, lookup)
    await _per_call("track_customer_message (one inbound text, for scale)", calls, track)


async def measure(calls: int) -> None:
    """PostgreSQL (throw-away database), then SQLite (throw-away file)."""
    name = f"xypr_park_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = create_database(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", pool_size=4)
    try:
        print("PostgreSQL")
        await _figures(database, calls)
    finally:
        await database.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    with tempfile.TemporaryDirectory() as folder:
        database = create_database(f"sqlite+aiosqlite:///{Path(folder) / 'xypr.sqlite3'}")
        try:
            print("SQLite")
            await _figures(database, calls)
        finally:
            await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.parking", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per figure (default 2000)")
    asyncio.run(measure(parser.parse_args().calls))


if __name__ == "__main__":
    main()
