"""Parked events: webhook events of a suspended tenant, kept in arrival order and republished on reactivation.

The race that matters is reactivation against a webhook that still believes the tenant is suspended
(its process cached the tenant a moment ago). Parking and activation therefore serialise on the tenant
row: a webhook inserts its events and then reads the tenant's status with a shared lock; activation
first updates the status (exclusive lock) and then counts what is still parked. So either the webhook's
events are seen and republished before the tenant turns active, or the webhook sees `active` and
publishes directly — never an event left behind, and never a parked event overtaken by a newer one.
(SQLite gives the same guarantee through its single writer.)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from xypr.backends.broker.base import Broker, BrokerUnavailable, OutgoingMessage
from xypr.backends.db import Database
from xypr.backends.db.base import utcnow
from xypr.core.errors import BackendUnavailable, Conflict, ServiceUnavailable
from xypr.core.logging import get_logger
from xypr.tenants.models import ParkedEvent, Tenant
from xypr.tenants.service import TenantRuntime

__all__ = ["hold_if_suspended", "parked_counts", "resume_parked"]

log = get_logger(__name__)

RESUME_BATCH = 500


class _TurnedActive(Exception):
    """The tenant was reactivated between the cached lookup and the parking: publish instead."""


class _StillParked(Exception):
    """Events were parked after the last batch: drain again before activating."""


async def hold_if_suspended(
    database: Database, queue: str, tenant: TenantRuntime, messages: Sequence[OutgoingMessage]
) -> list[OutgoingMessage]:
    """What must be published now: every message of an active tenant, none of a suspended one (parked).

    Parking is durable (committed) before this returns, so the webhook may answer 200 afterwards;
    a database failure is a 503, like a broker failure.
    """
    if tenant.active or not messages:
        return list(messages)
    try:
        async with database.session() as session:
            session.add_all(
                ParkedEvent(tenant_id=tenant.id, queue=queue, key=m.key, body=m.body, headers=dict(m.headers))
                for m in messages
            )
            await session.flush()
            # After our insert, under a shared lock: activation either sees our rows or we see it.
            status = await session.scalar(
                select(Tenant.status).where(Tenant.id == tenant.id).with_for_update(read=True)
            )
            if status == "active":
                raise _TurnedActive
    except _TurnedActive:
        return list(messages)
    except IntegrityError:
        # The tenant was deleted meanwhile: its events have nowhere to go.
        log.warning("webhook.tenant_deleted", tenant_id=tenant.id, dropped=len(messages))
        return []
    except (SQLAlchemyError, OSError) as exc:
        log.error("webhook.park_failed", tenant_id=tenant.id, error_type=type(exc).__name__)
        raise BackendUnavailable("cannot store the event right now; retry later") from exc
    log.info("webhook.parked", tenant_id=tenant.id, queue=queue, events=len(messages))
    return []


async def parked_counts(database: Database, tenant_ids: Sequence[str]) -> dict[str, int]:
    """How many events wait for each of these tenants (absent: none)."""
    if not tenant_ids:
        return {}
    async with database.session() as session:
        rows = await session.execute(
            select(ParkedEvent.tenant_id, func.count())
            .where(ParkedEvent.tenant_id.in_(tenant_ids))
            .group_by(ParkedEvent.tenant_id)
        )
        return {tenant_id: int(count) for tenant_id, count in rows.all()}


async def resume_parked(database: Database, broker: Broker, tenant_id: str, *, time_limit: float = 60.0) -> int:
    """Republish a `resuming` tenant's parked events in arrival order, then make it `active`.

    Returns how many events were republished. A broker failure or the time limit leaves the tenant
    `resuming` (webhooks keep parking, nothing is lost): call again. Republishing happens before the
    rows are deleted, so a crash in between repeats events, which the pipeline deduplicates.
    """
    deadline = time.monotonic() + time_limit
    resumed = 0
    while True:
        moved = await _republish_batch(database, broker, tenant_id)
        resumed += moved
        if moved == 0 and await _activate_if_drained(database, tenant_id):
            log.info("tenant.resumed", tenant_id=tenant_id, events=resumed)
            return resumed
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"republished {resumed} parked events, more keep arriving; call reactivate again to finish"
            )


async def _republish_batch(database: Database, broker: Broker, tenant_id: str) -> int:
    async with database.session() as session:
        status = await session.scalar(select(Tenant.status).where(Tenant.id == tenant_id))
        if status != "resuming":
            raise Conflict(f"the tenant is {status or 'deleted'}, no longer resuming")
        parked = list(
            (
                await session.scalars(
                    select(ParkedEvent)
                    .where(ParkedEvent.tenant_id == tenant_id)
                    .order_by(ParkedEvent.id)
                    .limit(RESUME_BATCH)
                )
            ).all()
        )
    if not parked:
        return 0
    try:
        # Consecutive events of one queue go out together; publish keeps their order.
        for queue, group in itertools.groupby(parked, key=lambda event: event.queue):
            await broker.publish(
                queue, [OutgoingMessage(body=e.body, key=e.key, headers=dict(e.headers or {})) for e in group]
            )
    except BrokerUnavailable as exc:
        raise BackendUnavailable("the broker is unavailable; parked events stay parked, try again") from exc
    async with database.session() as session:
        await session.execute(delete(ParkedEvent).where(ParkedEvent.id.in_([event.id for event in parked])))
    return len(parked)


async def _activate_if_drained(database: Database, tenant_id: str) -> bool:
    """Turn a `resuming` tenant `active` if nothing is parked any more (see the module docstring)."""

    try:
        async with database.session() as session:
            changed = await session.execute(
                update(Tenant)
                .where(Tenant.id == tenant_id, Tenant.status == "resuming")
                .values(status="active", updated_at=utcnow())
            )
            if getattr(changed, "rowcount", 0) != 1:
                raise Conflict("the tenant is no longer resuming")
            remaining = await session.scalar(
                select(func.count()).select_from(ParkedEvent).where(ParkedEvent.tenant_id == tenant_id)
            )
            if remaining:
                raise _StillParked
    except _StillParked:
        return False
    return True
