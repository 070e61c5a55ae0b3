"""The hot path's asyncpg pool: connected as SQLAlchemy would, sized from the process budget, closed for good."""

from __future__ import annotations

import asyncpg
import pytest

from xypr.backends.db import create_database


async def test_the_hot_pool_connects_with_what_the_url_says_as_sqlalchemy_reads_it() -> None:
    database = create_database(
        "postgresql://bridge:p%40ss@db.internal:5433/xypr?ssl=require&prepared_statement_cache_size=50", pool_size=20
    )
    try:
        assert database.hot is not None
        # `ssl` an argument of the connection (not a server setting), the password decoded, SQLAlchemy's own
        # options left to SQLAlchemy.
        assert database.hot._connect == {
            "host": "db.internal",
            "port": 5433,
            "user": "bridge",
            "password": "p@ss",
            "database": "xypr",
            "ssl": "require",
        }
        assert (database.hot.size, database.engine.pool.size()) == (15, 5)  # type: ignore[attr-defined]
    finally:
        await database.close()


@pytest.mark.parametrize(("budget", "hot", "orm"), [(1, 1, 1), (2, 1, 1), (4, 3, 1), (64, 48, 16)])
async def test_the_connection_budget_is_split_a_quarter_for_the_orm(budget: int, hot: int, orm: int) -> None:
    database = create_database("postgresql://bridge@db.internal/xypr", pool_size=budget)
    try:
        assert database.hot is not None
        assert (database.hot.size, database.engine.pool.size()) == (hot, orm)  # type: ignore[attr-defined]
    finally:
        await database.close()


async def test_a_closed_pool_lends_no_connection_and_opens_no_new_one() -> None:
    database = create_database("postgresql://bridge@db.internal/xypr", pool_size=4)
    await database.close()

    with pytest.raises(asyncpg.InterfaceError, match="closed"):
        async with database.sql():
            pass
