"""Parked events of suspended tenants: durable, republished in arrival order, never left behind; both backends."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest
from sqlalchemy import select, update

from tests.support.bridge import eventually, tenant_spec
from xypr.backends.broker.base import Delivery, OutgoingMessage
from xypr.core.errors import Conflict
from xypr.runtime import Runtime
from xypr.tenants.models import ParkedEvent, Tenant
from xypr.tenants.parking import hold_if_suspended, parked_counts, resume_parked
from xypr.tenants.service import TenantRuntime, create_tenant, open_tenant, parse_tenant_file
from xypr.topology import INBOUND_WHATSAPP, OUTBOUND_GENESYS

KEY = "conversation-1"


async def _tenant(runtime: Runtime, status: str) -> TenantRuntime:
    tenant = await create_tenant(runtime.database, runtime.box, parse_tenant_file(tenant_spec()))
    await _set_status(runtime, tenant.id, status)
    return dataclasses.replace(open_tenant(runtime.box, tenant), status=status)


async def _set_status(runtime: Runtime, tenant_id: str, status: str) -> None:
    async with runtime.database.session() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(status=status))


async def _status(runtime: Runtime, tenant_id: str) -> str | None:
    async with runtime.database.session() as session:
        return await session.scalar(select(Tenant.status).where(Tenant.id == tenant_id))


def _events(*numbers: int) -> list[OutgoingMessage]:
    return [OutgoingMessage(body=f"event-{n}".encode(), key=KEY, headers={"n": str(n)}) for n in numbers]


async def _consumed(runtime: Runtime, queue: str, count: int) -> list[str]:
    """The bodies of the next `count` messages of `queue`, in delivery order."""
    bodies: list[str] = []

    async def handle(delivery: Delivery) -> None:
        bodies.append(delivery.body.decode())
        await delivery.ack()

    consumer = await runtime.broker.consume(queue, handle, prefetch=1)
    try:
        await eventually(lambda: asyncio.sleep(0, len(bodies) >= count), within=20)
    finally:
        await consumer.stop()
    return bodies


async def test_an_active_tenants_events_are_published_not_parked(runtime: Runtime) -> None:
    tenant = await _tenant(runtime, "active")

    publish_now = await hold_if_suspended(runtime.database, INBOUND_WHATSAPP, tenant, _events(1, 2))

    assert [m.body for m in publish_now] == [b"event-1", b"event-2"]
    assert await parked_counts(runtime.database, [tenant.id]) == {}


async def test_a_suspended_tenants_events_are_parked_then_republished_in_arrival_order(runtime: Runtime) -> None:
    tenant = await _tenant(runtime, "suspended")
    for batch in ([1, 2], [3], [4, 5]):
        assert await hold_if_suspended(runtime.database, INBOUND_WHATSAPP, tenant, _events(*batch)) == []
    assert await hold_if_suspended(runtime.database, OUTBOUND_GENESYS, tenant, _events(6)) == []
    assert await parked_counts(runtime.database, [tenant.id]) == {tenant.id: 6}

    await _set_status(runtime, tenant.id, "resuming")
    resumed = await resume_parked(runtime.database, runtime.broker, tenant.id)

    assert resumed == 6
    assert await _status(runtime, tenant.id) == "active"
    assert await parked_counts(runtime.database, [tenant.id]) == {}
    assert await _consumed(runtime, INBOUND_WHATSAPP, 5) == [f"event-{n}" for n in range(1, 6)]
    assert await _consumed(runtime, OUTBOUND_GENESYS, 1) == ["event-6"]


async def test_a_webhook_that_still_believes_the_tenant_suspended_publishes_once_it_is_active(
    runtime: Runtime,
) -> None:
    stale = await _tenant(runtime, "suspended")
    await _set_status(runtime, stale.id, "active")  # reactivated after this process cached the tenant

    publish_now = await hold_if_suspended(runtime.database, INBOUND_WHATSAPP, stale, _events(1))

    assert [m.body for m in publish_now] == [b"event-1"]
    assert await parked_counts(runtime.database, [stale.id]) == {}


async def test_events_parked_during_the_replay_are_replayed_before_the_tenant_turns_active(runtime: Runtime) -> None:
    tenant = await _tenant(runtime, "suspended")
    await hold_if_suspended(runtime.database, INBOUND_WHATSAPP, tenant, _events(1, 2))
    await _set_status(runtime, tenant.id, "resuming")

    class WebhookDuringReplay:
        """The broker, with a webhook parking event 3 right after the first replayed batch went out."""

        def __init__(self) -> None:
            self.late_event_parked = False

        async def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
            await runtime.broker.publish(queue, messages)
            if not self.late_event_parked:
                self.late_event_parked = True
                assert await hold_if_suspended(runtime.database, INBOUND_WHATSAPP, tenant, _events(3)) == []

    resumed = await resume_parked(runtime.database, WebhookDuringReplay(), tenant.id)  # type: ignore[arg-type]

    assert resumed == 3
    assert await _status(runtime, tenant.id) == "active"
    assert await _consumed(runtime, INBOUND_WHATSAPP, 3) == ["event-1", "event-2", "event-3"]


async def test_concurrent_webhooks_during_reactivation_keep_their_order_and_lose_nothing(runtime: Runtime) -> None:
    tenant = await _tenant(runtime, "suspended")
    total = 40

    async def webhook_sender() -> None:
        # One conversation's webhooks, one after the other, from a process whose cache says "suspended".
        for n in range(1, total + 1):
            publish_now = await hold_if_suspended(runtime.database, INBOUND_WHATSAPP, tenant, _events(n))
            await runtime.broker.publish(INBOUND_WHATSAPP, publish_now)
            await asyncio.sleep(0.005)

    async def reactivation() -> int:
        await eventually(lambda: parked_counts(runtime.database, [tenant.id]), within=10, every=0.01)
        await _set_status(runtime, tenant.id, "resuming")
        return await resume_parked(runtime.database, runtime.broker, tenant.id)

    _, resumed = await asyncio.wait_for(asyncio.gather(webhook_sender(), reactivation()), timeout=30)

    assert resumed >= 1
    assert await _status(runtime, tenant.id) == "active"
    async with runtime.database.session() as session:
        assert await session.scalar(select(ParkedEvent.id).where(ParkedEvent.tenant_id == tenant.id)) is None
    assert await _consumed(runtime, INBOUND_WHATSAPP, total) == [f"event-{n}" for n in range(1, total + 1)]


async def test_replay_stops_when_the_tenant_is_suspended_again(runtime: Runtime) -> None:
    tenant = await _tenant(runtime, "suspended")
    await hold_if_suspended(runtime.database, INBOUND_WHATSAPP, tenant, _events(1))

    with pytest.raises(Conflict):
        await resume_parked(runtime.database, runtime.broker, tenant.id)  # still "suspended", not "resuming"

    assert await parked_counts(runtime.database, [tenant.id]) == {tenant.id: 1}
    assert await runtime.broker.depth(INBOUND_WHATSAPP) == 0
