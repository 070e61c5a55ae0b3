"""Hot-path SQL: the few statements every message runs, as SQL text, without the ORM or the SQL compiler.

Measured on this project's machine (`bench/`), one SQLAlchemy `execute` costs ~230 µs of CPU on top
of the ~40 µs asyncpg needs for the same statement; at several statements per message that was the
largest share of the workers' CPU. The statements here are written once, with PostgreSQL's numbered
placeholders (`$1`), and run

- on PostgreSQL by asyncpg, on connections of a pool of their own (`HotPool`); outside a transaction
  each statement commits by itself. Borrowing the asyncpg connection under SQLAlchemy's pool instead
  cost ~250 µs of CPU per borrow (the pool's events, the greenlet bridge, the adapted connection), a
  sixth of the inbound transformer's CPU in the profile; asyncpg's own pool costs a few µs;
- on SQLite by the standard library's `sqlite3`, on one connection of their own per process and file
  (`SqliteHot`), on a thread of its own. Through SQLAlchemy each block took a pooled aiosqlite connection,
  and the pool's connections competed for the file's one write lock: a deferred transaction that had to
  wait slept in SQLite's busy handler (1, 2, 5 … 100 ms), and one that upgraded a read lock could not wait
  at all. Here the blocks of a process queue for the one connection in order (an asyncio lock), a
  transaction begins with `BEGIN IMMEDIATE`, and a statement outside a block's transaction commits by
  itself (one hop to the thread per statement).

Values are adapted to what each side stores, so rows written here read back the same through the ORM:
dicts as JSON text, datetimes as SQLAlchemy's SQLite text format on SQLite.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg
import orjson

from xypr.backends.db.base import as_utc

__all__ = ["HotPool", "Sql", "SqliteHot", "as_datetime", "as_json", "hot_sql", "sqlite_statement"]

T = TypeVar("T")

_BROKEN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,
    TimeoutError,
)
_PLACEHOLDER = re.compile(r"\$(\d+)")
# How SQLAlchemy's SQLite DateTime stores a value (UTC, the zone dropped): what the ORM parses back.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


class Sql(Protocol):
    """Runs SQL text with `$n` placeholders."""

    async def fetchrow(self, query: str, *args: object) -> Sequence[Any] | None:
        """The first row of the result, or None."""

    async def fetch(self, query: str, *args: object) -> list[Sequence[Any]]:
        """Every row of the result."""

    async def execute(self, query: str, *args: object) -> None:
        """Run a statement, ignoring any result."""

    async def execute_many(self, query: str, rows: Sequence[Sequence[object]]) -> None:
        """Run a statement once per row of arguments, in one round trip (PostgreSQL pipelines them), all or
        none: each row is the statement's own plan (a lookup by primary key stays one)."""


class _Postgres:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetchrow(self, query: str, *args: object) -> Sequence[Any] | None:
        row = await self._connection.fetchrow(query, *map(_postgres_value, args))
        return None if row is None else tuple(row)

    async def fetch(self, query: str, *args: object) -> list[Sequence[Any]]:
        return [tuple(row) for row in await self._connection.fetch(query, *map(_postgres_value, args))]

    async def execute(self, query: str, *args: object) -> None:
        await self._connection.execute(query, *map(_postgres_value, args))

    async def execute_many(self, query: str, rows: Sequence[Sequence[object]]) -> None:
        await self._connection.executemany(query, [tuple(map(_postgres_value, row)) for row in rows])


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a returned connection needs beyond asyncpg's own clean-up (an open transaction is rolled back
    there): nothing. The hot path sets no session state, so asyncpg's default reset statement (RESET ALL,
    UNLISTEN, …) would be one more round trip per borrow for nothing."""


class HotPool:
    """The PostgreSQL connections of the hot path: an asyncpg pool of `size`, opened at first use (so a
    process starts while the database is still down) and never larger (busy handlers wait `timeout`).

    `connect` are `asyncpg.connect`'s arguments, as SQLAlchemy's engine makes them from the database URL
    (so `?ssl=require` and the like mean the same to both pools)."""

    def __init__(self, connect: dict[str, Any], *, size: int, timeout: float = 30.0) -> None:
        self._connect = connect
        self.size = size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    async def _opened(self) -> asyncpg.Pool:
        if self._closed:
            raise asyncpg.InterfaceError("the hot-path pool is closed")
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        min_size=0, max_size=self.size, reset=_keep_session, timeout=self._timeout, **self._connect
                    )
        return self._pool

    def connection(self) -> _Borrowed:
        """A connection of the pool for the block; one that cannot be trusted afterwards is closed, not reused."""
        return _Borrowed(self, transaction=False)

    async def close(self) -> None:
        """Close every connection (waiting at most `timeout` for those in use, then terminating them); the pool
        lends none afterwards."""
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=self._timeout)
            except TimeoutError:
                pool.terminate()


class _Borrowed:
    """A connection of a `HotPool` for an `async with` block (in a transaction, given `transaction`), handed
    back after it, or closed if it cannot be trusted any more. A class rather than generator context
    managers: the three nested ones it replaces cost more CPU per borrow than the statement they ran."""

    __slots__ = ("_hot", "_pool", "_raw", "_transaction")

    def __init__(self, hot: HotPool, *, transaction: bool) -> None:
        self._hot = hot
        self._pool: asyncpg.Pool | None = None
        self._raw: asyncpg.Connection | None = None
        self._transaction: Any = transaction

    async def __aenter__(self) -> asyncpg.Connection:
        pool = self._pool = await self._hot._opened()
        raw = self._raw = await pool.acquire(timeout=self._hot._timeout)
        if self._transaction:
            try:
                self._transaction = raw.transaction()
                await self._transaction.start()
            except BaseException as exc:
                await self._give_back(exc)
                raise
        return raw

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            if self._transaction:
                if exc is None:
                    await self._transaction.commit()
                else:
                    await self._transaction.rollback()
        except BaseException as failure:
            await self._give_back(failure)
            raise
        await self._give_back(exc)

    async def _give_back(self, exc: BaseException | None) -> None:
        raw, pool = self._raw, self._pool
        assert raw is not None
        assert pool is not None
        # Never hand such a connection out again:
        # - broken (the server went away, restarted, or the protocol lost track);
        # - still inside a transaction (a cancellation can interrupt the rollback);
        # - interrupted by a cancellation: asyncpg then cancels the statement in the background,
        #   and if that cancel request fails (the server is restarting) the protocol stays in its
        #   cancelled state, so the next borrower's statement failed with "cannot switch to state 12;
        #   another operation is in progress". The only safe owner of the outcome is a new connection.
        if exc is not None and (
            not isinstance(exc, Exception) or isinstance(exc, _BROKEN) or raw.is_in_transaction() or raw.is_closed()
        ):
            raw.terminate()  # the pool replaces it at the next acquire
        await asyncio.shield(pool.release(raw))


class _HotSql:
    """`hot_sql` on PostgreSQL: `Sql` on a borrowed connection."""

    __slots__ = ("_borrowed",)

    def __init__(self, pool: HotPool, *, transaction: bool) -> None:
        self._borrowed = _Borrowed(pool, transaction=transaction)

    async def __aenter__(self) -> Sql:
        return _Postgres(await self._borrowed.__aenter__())

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        await self._borrowed.__aexit__(kind, exc, tb)


def hot_sql(pool: HotPool | SqliteHot, *, transaction: bool = False) -> AbstractAsyncContextManager[Sql]:
    """A connection for SQL text; with `transaction`, everything commits together or (on error) not at all."""
    if isinstance(pool, SqliteHot):
        return _SqliteBlock(pool, transaction=transaction)
    return _HotSql(pool, transaction=transaction)


class _Lane:
    """One connection to a SQLite file and the one thread its calls run on, in the order they were submitted.
    Opened at first use, in the thread."""

    def __init__(self, path: str, busy_timeout: float, name: str) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._name = name
        self._connection: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise sqlite3.ProgrammingError("the hot-path SQLite connection is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection
        if connection is None:
            if self._closed:  # never open it again once closing began
                raise sqlite3.ProgrammingError("the hot-path SQLite connection is closed")
            connection = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._connection = connection
        return work(connection)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # first: a call submitted meanwhile must not open the connection again
        executor = self._executor
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_connection)
            executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class SqliteHot:
    """The hot path's connections to a SQLite file, per process (the standard library's `sqlite3`, WAL,
    `synchronous=NORMAL` like the ORM's), each on a thread of its own.

    - Single statements and transactions made in one call (`transact`) run on the first, in the order they
      were submitted, with nothing held between calls: under load a lock handed from one coroutine to the
      next costs an event-loop turn per statement, which bounded the statements of a process to a few
      hundred a second while its threads and cores idled.
    - A block that awaits between the statements of its transaction (`hot_sql(transaction=True)`: the
      parking paths) holds the second from its first statement to its end, so no other block's statement
      lands in its transaction. Its transaction begins with `BEGIN IMMEDIATE` (the write lock at once,
      waiting up to `busy_timeout` for another connection's, never a failing lock upgrade)."""

    def __init__(self, path: str, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self._calls = _Lane(path, busy_timeout, "xypr-sqlite")
        self._blocks = _Lane(path, busy_timeout, "xypr-sqlite-tx")
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def lock(self) -> asyncio.Lock:
        """The lock a transaction block holds, of the running event loop (a lock serves one loop)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` in one call, after the calls submitted before it; what it writes outside a
        transaction commits statement by statement."""
        return await self._calls.run(_fresh_then(work))

    async def transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` in one call and one `BEGIN IMMEDIATE` transaction, rolled back if it raises."""
        return await self._calls.run(_fresh_then(functools.partial(_in_transaction, work)))

    async def run_in_block(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` on the connection of transaction blocks (the caller holds `lock()`)."""
        return await self._blocks.run(work)

    async def close(self) -> None:
        """Close the connections after what was submitted before; runs nothing afterwards."""
        await self._calls.close()
        await self._blocks.close()


def _fresh(connection: sqlite3.Connection) -> None:
    # A transaction nobody owns any more (its block's rollback was cancelled before it ran): undo it.
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def _fresh_then(work: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    def fresh(connection: sqlite3.Connection) -> T:
        _fresh(connection)
        return work(connection)

    return fresh


def _in_transaction(work: Callable[[sqlite3.Connection], T], connection: sqlite3.Connection) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
    except BaseException:
        _rollback(connection)  # SQLite may have rolled back already (disk full, I/O error): keep the real error
        raise
    _commit(connection)
    return result


def _commit(connection: sqlite3.Connection) -> None:
    if not connection.in_transaction:  # a block whose statements never began one (cancelled, lock refused)
        return
    try:
        connection.execute("COMMIT")
    except BaseException:
        _rollback(connection)
        raise


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")


class _SqliteBlock:
    """`hot_sql` on SQLite: `Sql` on the process's connections to the file; with `transaction`, the block
    holds the connection of transaction blocks."""

    __slots__ = ("_begun", "_hot", "_lock", "_transaction")

    def __init__(self, hot: SqliteHot, *, transaction: bool) -> None:
        self._hot = hot
        self._transaction = transaction
        self._begun = False
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> Sql:
        if self._transaction:
            lock = self._lock = self._hot.lock()
            await lock.acquire()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._lock is None:
            return
        try:
            if self._begun:
                # Shielded: a cancelled block still ends its transaction (and `_fresh` covers one that never ran).
                await asyncio.shield(self._hot.run_in_block(_commit if exc is None else _rollback))
        finally:
            self._lock.release()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` inside the block's transaction (begun by its first statement that runs) or committing by
        itself."""
        if not self._transaction:
            return await self._hot.run(work)
        first = not self._begun
        self._begun = True

        def inside(connection: sqlite3.Connection) -> T:
            if first:
                _fresh(connection)
            # Decided on the thread: a first statement cancelled before it ran, or whose BEGIN found the file
            # locked, began nothing, and the next one begins the transaction instead.
            if not connection.in_transaction:
                connection.execute("BEGIN IMMEDIATE")
            return work(connection)

        return await self._hot.run_in_block(inside)

    async def fetchrow(self, query: str, *args: object) -> Sequence[Any] | None:
        sql, values = _qmark(query), tuple(map(_sqlite_value, args))
        row: Sequence[Any] | None = await self._run(lambda connection: connection.execute(sql, values).fetchone())
        return row

    async def fetch(self, query: str, *args: object) -> list[Sequence[Any]]:
        sql, values = _qmark(query), tuple(map(_sqlite_value, args))
        rows: list[Sequence[Any]] = await self._run(lambda connection: connection.execute(sql, values).fetchall())
        return rows

    async def execute(self, query: str, *args: object) -> None:
        sql, values = _qmark(query), tuple(map(_sqlite_value, args))
        await self._run(lambda connection: connection.execute(sql, values).close())

    async def execute_many(self, query: str, rows: Sequence[Sequence[object]]) -> None:
        sql, values = _qmark(query), [tuple(map(_sqlite_value, row)) for row in rows]
        if self._transaction:
            await self._run(lambda connection: connection.executemany(sql, values).close())
        else:  # all or none all the same
            await self._hot.transact(lambda connection: connection.executemany(sql, values).close())


def as_json(value: Any) -> dict[str, Any] | None:
    """A JSON column as read here: decoded already on PostgreSQL, text on SQLite."""
    if value is None:
        return None
    decoded = orjson.loads(value) if isinstance(value, str | bytes) else value
    return decoded if isinstance(decoded, dict) else None


def as_datetime(value: Any) -> datetime | None:
    """A timestamp column as read here, timezone-aware UTC."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return as_utc(moment)


def sqlite_statement(query: str, *args: object) -> tuple[str, tuple[object, ...]]:
    """A hot-path statement (`$n` placeholders) and its arguments as `sqlite3` takes them, for work done in
    one call (`SqliteHot.transact`)."""
    return _qmark(query), tuple(map(_sqlite_value, args))


@functools.lru_cache(maxsize=256)  # the hot path's statements are a few constant texts
def _qmark(query: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", query)


def _postgres_value(value: object) -> object:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value


def _sqlite_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_SQLITE_DATETIME)
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value
