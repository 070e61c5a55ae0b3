"""Genesys failing: Retry-After is waited, an outage longer than the retries ends in the dead letters, replayable."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.backends.broker.base import DeadLetter
from xypr.config import Settings
from xypr.state.models import Message
from xypr.topology import SEND_GENESYS

CUSTOMER = "16505551234"


async def _fault(bridge: Bridge, **fault: Any) -> None:
    (await bridge.genesys.post("/_sandbox/faults", json=fault)).raise_for_status()


async def _texts(bridge: Bridge) -> list[str]:
    return [item["body"].get("text") for item in await bridge.genesys_received()]


async def test_429_retry_after_is_waited_before_the_next_try(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        await _fault(bridge, status=429, count=1, retry_after=1)
        started = time.monotonic()

        await bridge.customer_says(CUSTOMER, "patience")

        assert await eventually(lambda: _texts(bridge)) == ["patience"]
        # Backoff alone would retry after ~0.05 s here; Genesys asked for one second.
        assert time.monotonic() - started >= 1.0


async def test_5xx_within_the_retries_loses_nothing_and_sends_once(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        await _fault(bridge, status=503, count=2)
        await _fault(bridge, status=502, count=1)

        await bridge.customer_says(CUSTOMER, "one")
        await bridge.customer_says(CUSTOMER, "two")

        await eventually(lambda: _has(bridge, "two"))
        assert await _texts(bridge) == ["one", "two"]
        assert await bridge.runtime.broker.dead_letters() == []


async def _has(bridge: Bridge, text: str) -> bool:
    return text in await _texts(bridge)


async def test_outage_longer_than_the_retries_dead_letters_the_message_with_its_error_and_replay_delivers_it(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings.model_copy(update={"max_attempts": 3})) as bridge:
        await _fault(bridge, status=503, count=3)

        await bridge.customer_says(CUSTOMER, "during the outage")

        async def dead() -> list[DeadLetter]:
            return await bridge.runtime.broker.dead_letters()

        (letter,) = await eventually(dead)
        assert letter.queue == SEND_GENESYS
        assert "Genesys HTTP 503" in letter.error
        async with bridge.runtime.database.session() as session:
            tracked = await session.scalar(select(Message).where(Message.direction == "inbound"))
        assert tracked is not None
        assert tracked.status == "received"  # not settled: a replay must still send it
        assert tracked.error is not None
        assert "Genesys HTTP 503" in tracked.error
        assert await _texts(bridge) == []

        assert await bridge.runtime.broker.replay(letter.id)

        assert await eventually(lambda: _texts(bridge)) == ["during the outage"]
        assert await bridge.runtime.broker.dead_letters() == []

        async def settled() -> bool:
            async with bridge.runtime.database.session() as session:
                row = await session.get(Message, tracked.id)
            return row is not None and row.status == "sent" and row.error is None

        await eventually(settled)
