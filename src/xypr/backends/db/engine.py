"""Engine and session factory, plus programmatic Alembic migrations for both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from xypr.backends.db.hot import HotPool, Sql, SqliteHot, hot_sql

__all__ = ["Database", "create_database", "migrate"]

MIGRATIONS = Path(__file__).with_name("migrations")


class Database:
    """An async engine and its session factory, and the hot path's own connections (`hot`): an asyncpg pool
    on PostgreSQL, a connection of its own on SQLite."""

    def __init__(self, engine: AsyncEngine, hot: HotPool | SqliteHot) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.hot = hot

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded backend."""
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on error."""
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    def sql(self, *, transaction: bool = False) -> AbstractAsyncContextManager[Sql]:
        """SQL text for the hot path (`xypr.backends.db.hot`), `async with database.sql() as sql:`; without
        `transaction`, on PostgreSQL, each statement commits by itself (no BEGIN/COMMIT round trips)."""
        return hot_sql(self.hot, transaction=transaction)

    async def ping(self) -> bool:
        """True when the database answers (for `/ready`)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            async with self.sql() as sql:  # the hot path's own connections too: every message needs them
                await sql.fetchrow("SELECT 1")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Dispose of pooled connections."""
        await self.hot.close()
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; the busy timeout makes writers queue, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_database(url: str, *, pool_size: int = 20) -> Database:
    """A `Database` for a SQLAlchemy async URL (`postgresql+asyncpg://…` or `sqlite+aiosqlite:///…`).

    On PostgreSQL `pool_size` connections are shared: a quarter (at least one) for the ORM, the rest
    (at least one) for the hot path's statements, which run nearly every query of a message."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return Database(engine, SqliteHot(path))
    orm = max(1, pool_size // 4)
    # No pre-ping: it costs a round trip per checkout. A connection that died (server restart) fails its
    # statement, the pool discards it, and the stage retries.
    # No overflow: a connection beyond the pool would be opened (TLS, authentication, codecs) and closed
    # again for every burst; under load the bench measured that churn as the inbound transformer's
    # largest cost. Handlers wait for a pooled connection instead.
    engine = create_async_engine(url, pool_size=orm, max_overflow=0, pool_timeout=30)
    _, connect = engine.dialect.create_connect_args(engine.url)
    for sqlalchemy_only in ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback"):
        connect.pop(sqlalchemy_only, None)
    return Database(engine, HotPool(dict(connect), size=max(1, pool_size - orm)))


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(database: Database, revision: str = "heads") -> None:
    """Bring the schema to `revision` with the Alembic migrations (same files for both databases)."""
    async with database.engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)
