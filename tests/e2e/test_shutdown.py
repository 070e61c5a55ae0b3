"""Stopping a worker loses and duplicates nothing: sends in flight finish, the rest waits for the next process."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.backends.broker.base import Consumer
from xypr.config import Settings
from xypr.services.registry import WORKER_SERVICES, stages_of
from xypr.stage import run_stage
from xypr.state.models import Message

CUSTOMERS = [f"1650555{n:04d}" for n in range(4)]
MESSAGES = 3


async def _start_workers(bridge: Bridge) -> list[Consumer]:
    runtime = bridge.runtime
    return [
        await run_stage(stage, broker=runtime.broker, policy=runtime.retry, prefetch=8)
        for stage in stages_of(list(WORKER_SERVICES), runtime)
    ]


async def _texts(bridge: Bridge) -> list[str]:
    return [item["body"].get("text") for item in await bridge.genesys_received()]


async def test_stopping_during_slow_sends_finishes_them_and_the_next_worker_sends_the_rest_exactly_once(
    backend_settings: Settings,
) -> None:
    grace = backend_settings.shutdown_grace_seconds
    async with running_bridge(backend_settings, workers=False) as bridge:
        # Genesys takes each message at once but answers 1.5 s later: a stop always finds sends in flight.
        (await bridge.genesys.post("/_sandbox/latency", json={"seconds": 1.5})).raise_for_status()
        workers = await _start_workers(bridge)
        for n in range(MESSAGES):
            for customer in CUSTOMERS:
                await bridge.customer_says(customer, f"{customer} #{n}")
        await eventually(lambda: _texts(bridge))  # Genesys has accepted at least one: sends are in flight

        await asyncio.gather(*(worker.stop(grace=grace) for worker in workers))  # SIGTERM

        accepted = await _texts(bridge)
        async with bridge.runtime.database.session() as session:
            sent = list(
                await session.scalars(
                    select(Message.text).where(Message.direction == "inbound", Message.status == "sent")
                )
            )
        # Every message Genesys accepted before the stop was recorded as sent: nothing in flight was abandoned.
        assert sorted(sent) == sorted(accepted)
        assert len(accepted) < len(CUSTOMERS) * MESSAGES  # the stop did come mid-stream

        (await bridge.genesys.post("/_sandbox/latency", json={"seconds": 0})).raise_for_status()
        workers = await _start_workers(bridge)  # the restarted process
        try:

            async def everything() -> list[str] | None:
                texts = await _texts(bridge)
                return texts if len(texts) >= len(CUSTOMERS) * MESSAGES else None

            await eventually(everything, within=30)
            await asyncio.sleep(0.5)
            texts = await _texts(bridge)
            assert [text for text, times in Counter(texts).items() if times > 1] == []
            for customer in CUSTOMERS:
                assert [t for t in texts if t.startswith(customer)] == [f"{customer} #{n}" for n in range(MESSAGES)]
            assert await bridge.runtime.broker.dead_letters() == []
        finally:
            await asyncio.gather(*(worker.stop() for worker in workers))
