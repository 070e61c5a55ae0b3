"""The hot path's own SQLite connection (`xypr.backends.db.hot.SqliteHot`): blocks in order, transactions
whole, a cancelled block leaving nothing open, and the ORM's connections writing beside it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from xypr.backends.db import Database, create_database
from xypr.backends.db.hot import SqliteHot


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = create_database(f"sqlite+aiosqlite:///{tmp_path / 'hot.sqlite3'}")
    async with database.sql() as sql:
        await sql.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, n INTEGER NOT NULL)")
    try:
        yield database
    finally:
        await database.close()


async def _rows(database: Database) -> list[tuple[int, str, int]]:
    async with database.sql() as sql:
        return [(int(r[0]), str(r[1]), int(r[2])) for r in await sql.fetch("SELECT id, owner, n FROM t ORDER BY id")]


async def test_a_transaction_commits_whole_and_a_failing_one_leaves_nothing(database: Database) -> None:
    async with database.sql(transaction=True) as sql:
        await sql.execute("INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", 1, "a", 1)
        await sql.execute("INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", 2, "a", 2)

    async def failing() -> None:
        async with database.sql(transaction=True) as sql:
            await sql.execute("INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", 3, "b", 3)
            await sql.execute("INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", 1, "b", 4)  # taken

    with pytest.raises(sqlite3.IntegrityError):
        await failing()

    assert await _rows(database) == [(1, "a", 1), (2, "a", 2)]


async def test_statements_of_other_blocks_never_run_inside_a_transaction(database: Database) -> None:
    """Blocks interleave at every await; each transaction still sees only its own statements, so one
    rolling back never takes another's rows with it."""

    async def block(owner: str, fail: bool) -> None:
        async with database.sql(transaction=True) as sql:
            for n in range(5):
                await sql.execute("INSERT INTO t (owner, n) VALUES ($1, $2)", owner, n)
                await asyncio.sleep(0)
            if fail:
                raise RuntimeError("roll back")

    async def alone(owner: str) -> None:
        async with database.sql() as sql:
            await sql.execute("INSERT INTO t (owner, n) VALUES ($1, $2)", owner, 0)

    outcomes = await asyncio.gather(
        *(block(f"tx{i}", fail=i % 2 == 1) for i in range(10)),
        *(alone(f"alone{i}") for i in range(10)),
        return_exceptions=True,
    )

    assert sum(isinstance(outcome, RuntimeError) for outcome in outcomes) == 5
    owners: dict[str, int] = {}
    for _, owner, _ in await _rows(database):
        owners[owner] = owners.get(owner, 0) + 1
    assert owners == {**{f"tx{i}": 5 for i in range(0, 10, 2)}, **{f"alone{i}": 1 for i in range(10)}}


async def test_a_cancelled_block_leaves_no_transaction_open(database: Database) -> None:
    started = asyncio.Event()

    async def stuck() -> None:
        async with database.sql(transaction=True) as sql:
            await sql.execute("INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", 1, "cancelled", 0)
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(stuck())
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async with database.sql() as sql:
        await sql.execute("INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", 2, "after", 0)
    # Committed, and the cancelled row is gone: another connection (the ORM's) sees exactly that.
    async with database.engine.connect() as conn:
        seen = (await conn.execute(text("SELECT owner FROM t ORDER BY id"))).scalars().all()
    assert seen == ["after"]


async def test_execute_many_outside_a_transaction_is_all_or_none(database: Database) -> None:

    async def failing() -> None:
        async with database.sql() as sql:
            await sql.execute_many(
                "INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", [(1, "m", 1), (2, "m", 2), (1, "m", 3)]
            )

    with pytest.raises(sqlite3.IntegrityError):
        await failing()
    async with database.sql() as sql:
        await sql.execute_many("INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", [(1, "m", 1), (2, "m", 2)])

    assert await _rows(database) == [(1, "m", 1), (2, "m", 2)]


async def test_the_orm_and_the_hot_connection_write_together_without_a_lock_error(database: Database) -> None:
    """The ORM's pooled connections and the hot connection share the file's write lock: each waits for the
    other (busy timeout, `BEGIN IMMEDIATE`) instead of failing with "database is locked"."""

    async def hot(n: int) -> None:
        async with database.sql(transaction=True) as sql:
            row = await sql.fetchrow("SELECT COALESCE(MAX(n), 0) FROM t WHERE owner = $1", "hot")
            assert row is not None
            await sql.execute("INSERT INTO t (owner, n) VALUES ($1, $2)", "hot", int(row[0]) + 1)

    async def orm(n: int) -> None:
        async with database.session() as session:
            await session.execute(text("INSERT INTO t (owner, n) VALUES ('orm', :n)"), {"n": n})

    await asyncio.gather(*(hot(n) for n in range(60)), *(orm(n) for n in range(60)))

    rows = await _rows(database)
    assert sorted(n for _, owner, n in rows if owner == "hot") == list(range(1, 61))  # no lost update
    assert len([owner for _, owner, _ in rows if owner == "orm"]) == 60


async def test_a_closed_connection_runs_nothing(database: Database) -> None:
    await database.close()

    async def select() -> None:
        async with database.sql() as sql:
            await sql.fetchrow("SELECT 1")

    with pytest.raises(sqlite3.ProgrammingError):
        await select()


async def test_single_statements_do_not_wait_for_a_transaction_block(database: Database) -> None:
    """A block awaiting between the statements of its transaction holds its own connection only: reads and
    one-call work of other handlers go on meanwhile."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def block() -> None:
        async with database.sql(transaction=True) as sql:
            await sql.execute("INSERT INTO t (id, owner, n) VALUES ($1, $2, $3)", 1, "block", 0)
            holding.set()
            await release.wait()

    task = asyncio.create_task(block())
    await asyncio.wait_for(holding.wait(), timeout=5)
    try:
        async with asyncio.timeout(2):
            assert await _rows(database) == []  # not committed yet, and no waiting for the block
    finally:
        release.set()
        await task
    assert await _rows(database) == [(1, "block", 0)]


async def test_transact_runs_its_work_in_one_transaction(database: Database) -> None:
    hot = database.hot
    assert isinstance(hot, SqliteHot)

    def two(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO t (id, owner, n) VALUES (1, 'x', 1)")
        connection.execute("INSERT INTO t (id, owner, n) VALUES (1, 'x', 2)")  # taken: both roll back

    with pytest.raises(sqlite3.IntegrityError):
        await hot.transact(two)
    await hot.transact(lambda connection: connection.execute("INSERT INTO t (id, owner, n) VALUES (2, 'y', 1)"))

    assert await _rows(database) == [(2, "y", 1)]
