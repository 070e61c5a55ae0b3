"""Once an upstream accepted a message, no later failure sends it again: only the bookkeeping is retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import select

from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.backends.db.hot import Sql
from xypr.config import Settings
from xypr.state.models import Message
from xypr.whatsapp.client import OutcomeUnknown

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
    """Hot-path SQL whose first statement containing `marker` fails as asyncpg does during a restart."""

    def __init__(self, sql: Sql, state: dict[str, int], marker: str) -> None:
        self._sql, self._state, self._marker = sql, state, marker

    def _maybe_fail(self, query: str) -> None:
        if self._marker in " ".join(query.split()) and not self._state["failures"]:
            self._state["failures"] += 1
            raise asyncpg.InterfaceError("cannot perform operation: connection is closed (injected after the send)")

    async def fetchrow(self, query: str, *args: object) -> Sequence[Any] | None:
        self._maybe_fail(query)
        return await self._sql.fetchrow(query, *args)

    async def fetch(self, query: str, *args: object) -> list[Sequence[Any]]:
        self._maybe_fail(query)
        return await self._sql.fetch(query, *args)

    async def execute(self, query: str, *args: object) -> None:
        self._maybe_fail(query)
        await self._sql.execute(query, *args)

    async def execute_many(self, query: str, rows: Sequence[Sequence[object]]) -> None:
        self._maybe_fail(query)
        await self._sql.execute_many(query, rows)


def _fail_database_once(bridge: Bridge, marker: str) -> dict[str, int]:
    database = bridge.runtime.database
    real_sql = database.sql
    state = {"failures": 0}

    @asynccontextmanager
    async def sql(*, transaction: bool = False) -> AsyncIterator[Sql]:
        async with real_sql(transaction=transaction) as inner:
            yield _SqlFailingOnce(inner, state, marker)

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
        injected = _fail_database_once(bridge, "SET status = 'sent', error = NULL")

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
        injected = _fail_database_once(bridge, "SET status = 'sent', wamid")

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


async def test_a_meta_500_then_130429_storm_longer_than_max_attempts_delivers_the_agent_message_once(
    backend_settings: Settings,
) -> None:
    """Transient Meta answers are retried until the horizon, not `max_attempts` times: no Failed receipt."""
    settings = backend_settings.model_copy(
        update={"max_attempts": 3, "retry_base_seconds": 0.05, "retry_max_seconds": 0.2, "retry_horizon_seconds": 60}
    )
    async with running_bridge(settings) as bridge:
        await bridge.customer_says(CUSTOMER, "hi")
        await eventually(bridge.genesys_received)
        number = bridge.demo["whatsapp"]["phone_number_id"]
        faults = [{"code": 1, "http_status": 500, "count": 3}, {"code": 130429, "count": 5}]
        for fault in faults:
            (await bridge.meta.post("/_sandbox/faults", json={"phone_number_id": number, **fault})).raise_for_status()

        await bridge.agent_says(CUSTOMER, "through the storm")
        await bridge.agent_says(CUSTOMER, "and after it")

        await eventually(lambda: _has(_whatsapp_texts(bridge), "and after it"), within=30)
        await asyncio.sleep(0.3)
        assert await _whatsapp_texts(bridge) == ["through the storm", "and after it"]
        assert await bridge.runtime.broker.dead_letters() == []
        receipts = [item["body"].get("status") for item in await bridge.genesys_received("receipt")]
        assert "Failed" not in receipts


class _AnswerLostOnce:
    """The Graph client, except that the first agent message's answer is lost after Meta accepted it
    (the same unknown outcome as a worker killed at that instant)."""

    def __init__(self, graph: Any) -> None:
        self._graph = graph
        self.lost = 0
        self.calls = 0
        self.lost_at = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._graph, name)

    async def send_message(self, tenant: Any, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        answer: dict[str, Any] = await self._graph.send_message(tenant, body)
        if not self.lost and body.get("type") == "text":
            self.lost += 1
            self.lost_at = time.monotonic()
            raise OutcomeUnknown("Graph API unreachable: ServerDisconnectedError (injected after Meta accepted)")
        return answer


async def test_a_send_whose_answer_was_lost_is_matched_to_its_status_and_not_sent_again(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "hi")
        await eventually(bridge.genesys_received)
        lossy = _AnswerLostOnce(bridge.runtime.graph)
        bridge.runtime.graph = lossy

        await bridge.agent_says(CUSTOMER, "sent exactly once")

        await eventually(lambda: _sent(bridge, "outbound"), within=30)
        settled_after = time.monotonic() - lossy.lost_at
        print(f"answer lost -> matched to Meta's status and recorded in {settled_after:.2f} s, without a resend")
        assert lossy.lost == 1
        (sent,) = await bridge.whatsapp_sent(to=CUSTOMER)
        assert sent["body"]["biz_opaque_callback_data"].startswith("xypr:")
        async with bridge.runtime.database.session() as session:
            wamid = await session.scalar(select(Message.wamid).where(Message.direction == "outbound"))
        assert wamid == sent["wamid"]  # recorded from the status webhook that named our message
