"""Once an upstream accepted a message, no later failure sends it again: only the bookkeeping is retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import select

from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.backends.db.hot import Sql
from xypr.config import Settings
from xypr.state.models import Message

CUSTOMER = "16505551234"


class _CacheFailingOnce:
    """The runtime's cache, except that the first `set` of a key containing `marker` fails (a stale connection)."""

    def __init__(self, cache: Any, marker: str) -> None:
        self._cache = cache
        self._marker = marker
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        if self._marker in key and not self.failures:
            self.failures += 1
            raise ConnectionResetError("Connection reset by peer (injected after the send)")
        await self._cache.set(key, value, ttl=ttl)


class _SqlFailingOnce:
    """Hot-path SQL whose first statement starting with `prefix` fails as asyncpg does during a restart."""

    def __init__(self, sql: Sql, state: dict[str, int], prefix: str) -> None:
        self._sql, self._state, self._prefix = sql, state, prefix

    def _maybe_fail(self, query: str) -> None:
        if query.strip().startswith(self._prefix) and not self._state["failures"]:
            self._state["failures"] += 1
            raise asyncpg.InterfaceError("cannot perform operation: connection is closed (injected after the send)")

    async def fetchrow(self, query: str, *args: object) -> Sequence[Any] | None:
        self._maybe_fail(query)
        return await self._sql.fetchrow(query, *args)

    async def execute(self, query: str, *args: object) -> None:
        self._maybe_fail(query)
        await self._sql.execute(query, *args)


def _fail_database_once(bridge: Bridge, prefix: str) -> dict[str, int]:
    database = bridge.runtime.database
    real_sql = database.sql
    state = {"failures": 0}

    @asynccontextmanager
    async def sql(*, transaction: bool = False) -> AsyncIterator[Sql]:
        async with real_sql(transaction=transaction) as inner:
            yield _SqlFailingOnce(inner, state, prefix)

    database.sql = sql  # type: ignore[method-assign]
    return state


async def _statuses(bridge: Bridge, direction: str) -> list[str]:
    async with bridge.runtime.database.session() as session:
        rows = await session.scalars(select(Message.status).where(Message.direction == direction))
        return list(rows.all())


async def _genesys_texts(bridge: Bridge) -> list[str]:
    return [item["body"].get("text") for item in await bridge.genesys_received()]


async def _whatsapp_texts(bridge: Bridge) -> list[str]:
    return [item["body"]["text"]["body"] for item in await bridge.whatsapp_sent(to=CUSTOMER)]


async def test_a_database_failure_recording_a_genesys_send_does_not_send_it_again(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        injected = _fail_database_once(bridge, "UPDATE messages SET status = 'sent'")

        await bridge.customer_says(CUSTOMER, "only once")

        await eventually(lambda: _sent(bridge, "inbound"))
        assert injected["failures"] == 1
        await bridge.customer_says(CUSTOMER, "and then this")
        await eventually(lambda: _has(_genesys_texts(bridge), "and then this"))
        await asyncio.sleep(0.3)  # a resend, if any, would be right behind
        assert await _genesys_texts(bridge) == ["only once", "and then this"]
        assert await bridge.runtime.broker.dead_letters() == []


async def test_a_cache_failure_after_a_whatsapp_send_does_not_send_it_again(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "hi")
        await eventually(bridge.genesys_received)
        failing = _CacheFailingOnce(bridge.runtime.cache, ":wa-part:")
        bridge.runtime.cache = failing

        await bridge.agent_says(CUSTOMER, "sent exactly once")

        await eventually(lambda: _sent(bridge, "outbound"))
        assert failing.failures == 1
        await bridge.agent_says(CUSTOMER, "next")
        await eventually(lambda: _has(_whatsapp_texts(bridge), "next"))
        await asyncio.sleep(0.3)
        assert await _whatsapp_texts(bridge) == ["sent exactly once", "next"]


async def test_a_database_failure_recording_a_whatsapp_send_does_not_send_it_again(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "hi")
        await eventually(bridge.genesys_received)
        injected = _fail_database_once(bridge, "UPDATE messages SET status = 'sent', wamid")

        await bridge.agent_says(CUSTOMER, "sent exactly once")

        await eventually(lambda: _sent(bridge, "outbound"))
        assert injected["failures"] == 1
        await asyncio.sleep(0.3)
        assert await _whatsapp_texts(bridge) == ["sent exactly once"]


async def _sent(bridge: Bridge, direction: str) -> bool:
    statuses = await _statuses(bridge, direction)
    return bool(statuses) and all(status == "sent" for status in statuses)


async def _has(texts: Any, text: str) -> bool:
    return text in await texts
