"""Genesys failing: Retry-After is waited, outages ridden out up to the retry horizon, then dead letters, replayable."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select

from tests.support.bridge import Bridge, eventually, running_bridge, tenant_spec
from xypr.backends.broker.base import DeadLetter
from xypr.config import Settings
from xypr.state.models import Message
from xypr.topology import INBOUND_WHATSAPP, SEND_GENESYS

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


async def test_outage_longer_than_the_retry_horizon_dead_letters_the_message_with_its_error_and_replay_delivers_it(
    backend_settings: Settings,
) -> None:
    settings = backend_settings.model_copy(update={"retry_horizon_seconds": 0.5})
    async with running_bridge(settings) as bridge:
        # Far longer than the horizon; ended below, once the message is a dead letter (not by the clock, which
        # on a loaded machine could still be running when the replay comes).
        await _fault(bridge, status=503, seconds=600)

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

        assert (await bridge.genesys.delete("/_sandbox/faults")).json() == {"cleared": 1}  # Genesys is back
        assert await bridge.runtime.broker.replay(letter.id)

        assert await eventually(lambda: _texts(bridge)) == ["during the outage"]
        assert await bridge.runtime.broker.dead_letters() == []

        async def settled() -> bool:
            async with bridge.runtime.database.session() as session:
                row = await session.get(Message, tracked.id)
            return row is not None and row.status == "sent" and row.error is None

        await eventually(settled)


async def test_an_outage_then_429s_are_ridden_out_every_message_delivered_once_in_order_none_dead_lettered(
    backend_settings: Settings,
) -> None:
    """Genesys answers 503 for 4 s, then 429 with Retry-After: far more than `max_attempts` tries, well within
    the horizon. Every conversation's messages arrive, once each, in order."""
    settings = backend_settings.model_copy(
        update={"max_attempts": 3, "retry_base_seconds": 0.1, "retry_max_seconds": 0.5, "retry_horizon_seconds": 60}
    )
    customers = [f"1650555{n:04d}" for n in range(6)]
    async with running_bridge(settings) as bridge:
        await _fault(bridge, status=503, seconds=4)
        await _fault(bridge, status=429, count=4, retry_after=1)

        for round_ in range(3):
            for customer in customers:
                await bridge.customer_says(customer, f"{customer} #{round_}")

        async def all_delivered() -> list[str] | None:
            texts = await _texts(bridge)
            return texts if len(texts) >= 3 * len(customers) else None

        texts = await eventually(all_delivered, within=60)
        await asyncio.sleep(0.3)
        texts = await _texts(bridge)
        assert len(texts) == len(set(texts)) == 3 * len(customers)  # none twice
        for customer in customers:
            assert [t for t in texts if t.startswith(customer)] == [f"{customer} #{n}" for n in range(3)]
        assert await bridge.runtime.broker.dead_letters() == []


async def test_a_conversation_held_by_an_outage_does_not_hold_another_of_the_same_partition(
    backend_settings: Settings,
) -> None:
    """One partition: tenant A's Genesys is down for 5 s; tenant B's customer is delivered meanwhile."""
    settings = backend_settings.model_copy(
        update={"partitions": 1, "retry_base_seconds": 0.1, "retry_max_seconds": 0.5, "retry_horizon_seconds": 60}
    )
    async with running_bridge(settings) as bridge:
        other = tenant_spec()
        await bridge.add_tenant(other)
        await _fault(bridge, status=503, seconds=5, integration_id=bridge.demo["genesys"]["integration_id"])
        started = time.monotonic()

        await bridge.customer_says(CUSTOMER, "held by the outage")
        await bridge.customer_says(
            CUSTOMER, "after the held one", phone_number_id=bridge.demo["whatsapp"]["phone_number_id"]
        )
        await bridge.customer_says("16505550000", "other tenant", phone_number_id=other["whatsapp"]["phone_number_id"])

        other_integration = other["genesys"]["integration_id"]
        await eventually(lambda: bridge.genesys_received(integration_id=other_integration))
        assert time.monotonic() - started < 4.5  # while A is still down
        assert await _texts(bridge) == []

        await eventually(lambda: _has(bridge, "after the held one"), within=30)
        assert await _texts(bridge) == ["held by the outage", "after the held one"]


async def test_more_held_conversations_than_the_concurrency_are_parked_and_the_partition_goes_on(
    backend_settings: Settings,
) -> None:
    """One partition, two slots: tenant A's Genesys is down for 6 s with four conversations held. Each is
    parked after half a second, so tenant B's customer is delivered meanwhile; then A's messages all
    arrive, once each, in order."""
    settings = backend_settings.model_copy(
        update={
            "partitions": 1,
            "worker_concurrency": 2,
            "park_after_seconds": 0.5,
            "retry_base_seconds": 0.1,
            "retry_max_seconds": 0.5,
            "retry_horizon_seconds": 60,
        }
    )
    held = [f"1650555{n:04d}" for n in range(4)]
    async with running_bridge(settings) as bridge:
        other = tenant_spec()
        await bridge.add_tenant(other)
        await _fault(bridge, status=503, seconds=6, integration_id=bridge.demo["genesys"]["integration_id"])
        started = time.monotonic()

        for round_ in range(2):
            for customer in held:
                await bridge.customer_says(customer, f"{customer} #{round_}")
        await bridge.customer_says("16505550000", "other tenant", phone_number_id=other["whatsapp"]["phone_number_id"])

        other_integration = other["genesys"]["integration_id"]
        await eventually(lambda: bridge.genesys_received(integration_id=other_integration), within=10)
        # Held in place, two of A's conversations kept both slots until Genesys came back.
        assert time.monotonic() - started < 5.5  # while A is still down
        assert await _texts(bridge) == []

        async def all_parked() -> bool:
            metrics = (await bridge.client.get("/metrics")).text
            # One hop (XYPR_DIRECT_SEND): the inbound event, which calls Genesys itself, is what is parked.
            gauge = f'xypr_parked_events{{queue="{INBOUND_WHATSAPP}"}} '
            return [line for line in metrics.splitlines() if line.startswith(gauge)] == [f"{gauge}{2.0 * len(held)}"]

        await eventually(all_parked, within=5)

        async def all_delivered() -> list[str] | None:
            texts = await _texts(bridge)
            return texts if len(texts) >= 2 * len(held) else None

        await eventually(all_delivered, within=40)
        await asyncio.sleep(0.5)
        texts = await _texts(bridge)
        assert len(texts) == len(set(texts)) == 2 * len(held)  # none twice
        for customer in held:
            assert [t for t in texts if t.startswith(customer)] == [f"{customer} #{n}" for n in range(2)]
        assert await bridge.runtime.broker.dead_letters() == []
