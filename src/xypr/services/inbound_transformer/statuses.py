"""Meta status webhooks → message tracking and Genesys receipts: `Delivered` once, `Failed` with a reason.

Every `(tenant, wamid, status)` takes effect once, across processes: a Redis `SET NX` marks the ones
already done (the fast path), and the `message_statuses` unique key decides the rest. The receipt is
published in the same database transaction that records the status, so a crash in between leaves
nothing recorded and the redelivery publishes again (genesys-api then drops the second copy by its
dedupe key).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from xypr.backends.db.base import utcnow
from xypr.core.errors import PermanentError, TransientError
from xypr.core.logging import get_logger
from xypr.core.metrics import WHATSAPP_STATUSES, WHATSAPP_UNKNOWN_FIELDS
from xypr.events import GenesysRequest, InboundWhatsAppEvent
from xypr.runtime import Runtime
from xypr.state.messages import apply_status_step, record_status_seen
from xypr.state.models import Conversation, Message, MessageStatus
from xypr.state.status import StatusStep, advance, furthest, least_advanced
from xypr.tenants.service import TenantRuntime
from xypr.topology import SEND_GENESYS
from xypr.transform.inbound import genesys_time
from xypr.transform.receipts import failed_receipt, receipt
from xypr.whatsapp.callback import PART_TTL_SECONDS, parse_part_marker, part_key
from xypr.whatsapp.errors import describe, receipt_reason
from xypr.whatsapp.models import WaStatus, customer_id_type

__all__ = ["META_STATUSES", "handle_status", "part_progress", "receipt_for"]

log = get_logger(__name__)

META_STATUSES: Final = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read", "failed": "failed"}
"""Meta status → our tracking status (`played`, a voice note listened to, implies read)."""

_KNOWN_FIELDS: Final = frozenset(
    {
        "id", "status", "timestamp", "recipient_id", "recipient_user_id", "recipient_type", "recipient_participant_id",
        "recipient_identity_key_hash", "conversation", "pricing", "errors", "biz_opaque_callback_data", "type",
        "message",
    }
)  # fmt: skip
_PENDING: Final = b"pending"
_DONE: Final = b"done"
# A claim outlives any normal handling; the done mark outlives Meta's 7 days of redelivery.
CLAIM_TTL_SECONDS: Final = 120.0
DONE_TTL_SECONDS: Final = 8 * 24 * 3600.0
# How far back an agent message still counts as "being sent" when its status arrives first.
IN_FLIGHT_WINDOW: Final = timedelta(minutes=10)
# Split texts: how many recent agent messages of the conversation are searched for a part's wamid.
PART_SEARCH_LIMIT: Final = 200


def part_progress(parts: list[str], seen: dict[str, set[str]]) -> str:
    """The status of a split text as a whole (pure): as far as its least advanced part got."""
    progress = []
    for part in parts:
        statuses = {META_STATUSES[each] for each in seen.get(part, set()) if each in META_STATUSES} - {"failed"}
        progress.append(furthest(statuses, default="sent"))
    return least_advanced(progress, default="sent")


def receipt_for(
    step: StatusStep,
    *,
    status: WaStatus,
    genesys_message_id: str,
    customer_id: str,
    customer_id_type: str,
    now_time: str,
) -> dict[str, Any] | None:
    """The Open Messaging receipt body for a step (pure); None when Genesys needs nothing."""
    moment = genesys_time(status.timestamp) if status.timestamp.isdigit() else now_time
    if step.receipt == "Delivered":
        return receipt(
            genesys_message_id=genesys_message_id,
            customer_id=customer_id,
            customer_id_type=customer_id_type,
            status="Delivered",
            time=moment,
        )
    if step.receipt == "Failed":
        reason, text = _failure(status)
        return failed_receipt(
            genesys_message_id=genesys_message_id,
            customer_id=customer_id,
            customer_id_type=customer_id_type,
            reason=reason,
            message=text,
            time=moment,
        )
    return None


async def handle_status(runtime: Runtime, tenant: TenantRuntime, event: InboundWhatsAppEvent) -> str:
    """Apply one status webhook item once; returns the stage outcome label."""
    try:
        status = WaStatus.model_validate(event.item)
    except ValidationError as exc:
        raise PermanentError(f"malformed WhatsApp status: {exc.errors()[0]['msg']}") from exc
    unknown = sorted(set(event.item) - _KNOWN_FIELDS)
    if unknown:
        WHATSAPP_UNKNOWN_FIELDS.labels("status").inc()
        log.info("whatsapp.status.unknown_fields", tenant_id=tenant.id, fields=unknown[:20])
    label = status.status if status.status in META_STATUSES else "other"
    observed = META_STATUSES.get(status.status)
    if observed is None:
        WHATSAPP_STATUSES.labels(label, "ignored").inc()
        log.info("whatsapp.status.ignored", tenant_id=tenant.id, wamid=status.id, status=status.status[:32])
        return "ignored"

    await _note_accepted_part(runtime, tenant.id, status)
    done_key = f"{tenant.id}:status:{status.id}:{status.status}"
    claimed = await runtime.cache.set_nx(done_key, _PENDING, ttl=CLAIM_TTL_SECONDS)
    if not claimed and await runtime.cache.get(done_key) == _DONE:
        WHATSAPP_STATUSES.labels(label, "duplicate").inc()
        return "duplicate"
    # Not done, or claimed by a process that may have died: the database unique key decides.
    try:
        outcome = await _apply(runtime, tenant, event, status, observed)
    except Exception:
        if claimed:
            await runtime.cache.delete(done_key)
        raise
    if outcome == "unknown_message":
        # Not marked done: should the send be recorded after all, a redelivery still takes effect.
        await runtime.cache.delete(done_key)
    else:
        await runtime.cache.set(done_key, _DONE, ttl=DONE_TTL_SECONDS)
    WHATSAPP_STATUSES.labels(label, outcome).inc()
    return outcome


async def _note_accepted_part(runtime: Runtime, tenant_id: str, status: WaStatus) -> None:
    """Any status of a part we marked proves Meta accepted it: remember its wamid where whatsapp-api looks
    before sending a part whose earlier attempt has no known outcome (`xypr.whatsapp.callback`)."""
    marked = parse_part_marker(status.biz_opaque_callback_data)
    if marked is not None:
        message_id, part = marked
        await runtime.cache.set_nx(part_key(tenant_id, message_id, part), status.id.encode(), ttl=PART_TTL_SECONDS)


async def _apply(
    runtime: Runtime, tenant: TenantRuntime, event: InboundWhatsAppEvent, status: WaStatus, observed: str
) -> str:
    recipients = [each for each in (status.recipient_id, status.recipient_user_id) if each]
    try:
        async with runtime.database.session() as session:
            conversation = await _conversation(session, tenant_id=tenant.id, recipients=recipients)
            message = await _outbound_message(session, tenant_id=tenant.id, wamid=status.id, conversation=conversation)
            # Meta can report a status before whatsapp-api has recorded the wamid it got back: wait a little.
            unsettled = message is None or message.status == "received"
            if (
                unsettled
                and await _sending(session, tenant_id=tenant.id, conversation=conversation)
                and await _may_wait(runtime, tenant_id=tenant.id, status=status)
            ):
                raise TransientError(f"status {status.status} for {status.id} before its send was recorded")
            if message is None:
                log.info("whatsapp.status.unknown_message", tenant_id=tenant.id, wamid=status.id, status=status.status)
                return "unknown_message"
            # The unique key: a second (tenant, wamid, status) fails here.
            await record_status_seen(session, tenant_id=tenant.id, wamid=status.id, status=status.status)

            current = "sent" if message.status == "received" else message.status
            parts = _parts(message)
            if observed in ("delivered", "read") and len(parts) > 1:
                observed = part_progress(parts, await _statuses_of(session, tenant_id=tenant.id, wamids=parts))
            step = advance(current, observed)
            apply_status_step(message, step, error=": ".join(_failure(status)))
            if step.receipt is None or not message.genesys_message_id:
                return "recorded"
            if conversation is None and message.conversation_id:
                conversation = await session.get(Conversation, message.conversation_id)
            # Addressed as Genesys knows the customer; ordered with the conversation's WhatsApp traffic.
            customer_id = conversation.genesys_customer_id if conversation is not None else next(iter(recipients), None)
            order_by = conversation.wa_id if conversation is not None else customer_id
            if customer_id is None or order_by is None:
                log.warning("whatsapp.status.no_recipient", tenant_id=tenant.id, wamid=status.id)
                return "recorded"
            body = receipt_for(
                step,
                status=status,
                genesys_message_id=message.genesys_message_id,
                customer_id=customer_id,
                customer_id_type=customer_id_type(customer_id),
                now_time=genesys_time(time.time()),
            )
            if body is None:  # cannot happen: a step with a receipt always has a body
                return "recorded"
            request = GenesysRequest(
                tenant_id=tenant.id,
                kind="receipt",
                body=body,
                conversation_id=message.conversation_id,
                accepted_at=event.accepted_at,
                correlation_id=event.correlation_id,
                dedupe_key=f"receipt:{message.genesys_message_id}:{step.receipt}",
            )
            # Published before the commit: if the commit fails the status is not recorded and comes again.
            await runtime.broker.publish(
                SEND_GENESYS,
                [request.to_outgoing(customer=order_by)],
            )
            log.info(
                "whatsapp.status.receipt",
                tenant_id=tenant.id,
                wamid=status.id,
                status=status.status,
                receipt=step.receipt,
                genesys_message_id=message.genesys_message_id,
            )
            return "receipt"
    except IntegrityError:
        return "duplicate"


def _failure(status: WaStatus) -> tuple[str, str]:
    if not status.errors:
        return "GeneralError", "WhatsApp reported the message as failed without a reason."
    error = status.errors[0]
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details") or ""
    hint = f"{error.get('title') or ''} {error.get('message') or ''} {details}"
    return receipt_reason(code if isinstance(code, int) else None, hint), describe(error)


def _parts(message: Message) -> list[str]:
    if message.details is not None and message.details.wamids is not None:
        return list(message.details.wamids)
    return [message.wamid] if message.wamid else []


async def _conversation(session: AsyncSession, *, tenant_id: str, recipients: list[str]) -> Conversation | None:
    for recipient in recipients:
        found = await session.scalar(
            select(Conversation).where(Conversation.tenant_id == tenant_id, Conversation.wa_id == recipient)
        )
        if found is None:
            found = await session.scalar(
                select(Conversation).where(Conversation.tenant_id == tenant_id, Conversation.bsuid == recipient)
            )
        if found is not None:
            return found
    return None


async def _outbound_message(
    session: AsyncSession, *, tenant_id: str, wamid: str, conversation: Conversation | None
) -> Message | None:
    exact = await session.scalar(
        select(Message).where(Message.tenant_id == tenant_id, Message.direction == "outbound", Message.wamid == wamid)
    )
    if exact is not None or conversation is None:
        return exact
    # A split text keeps its first part's wamid in `wamid` and every part's in `details.wamids`.
    recent = await session.scalars(
        select(Message)
        .where(
            Message.tenant_id == tenant_id,
            Message.conversation_id == conversation.id,
            Message.direction == "outbound",
        )
        .order_by(Message.created_at.desc())
        .limit(PART_SEARCH_LIMIT)
    )
    return next((message for message in recent if wamid in _parts(message)), None)


async def _sending(session: AsyncSession, *, tenant_id: str, conversation: Conversation | None) -> bool:
    """True when an agent message of the conversation is being sent (accepted by us, not yet by Meta)."""
    if conversation is None:
        return False
    in_flight = await session.scalar(
        select(Message.id)
        .where(
            Message.tenant_id == tenant_id,
            Message.conversation_id == conversation.id,
            Message.direction == "outbound",
            Message.status == "received",
            Message.created_at > utcnow() - IN_FLIGHT_WINDOW,
        )
        .limit(1)
    )
    return in_flight is not None


async def _may_wait(runtime: Runtime, *, tenant_id: str, status: WaStatus) -> bool:
    # Counted in the shared cache so a redelivered event does not start waiting from scratch, and
    # kept below the stage's attempts so the status is given up (not dead-lettered) if nothing comes.
    tries = await runtime.cache.incr(f"{tenant_id}:status-wait:{status.id}:{status.status}", ttl=600.0)
    return tries < runtime.retry.max_attempts


async def _statuses_of(session: AsyncSession, *, tenant_id: str, wamids: list[str]) -> dict[str, set[str]]:
    rows = await session.execute(
        select(MessageStatus.wamid, MessageStatus.status).where(
            MessageStatus.tenant_id == tenant_id, MessageStatus.wamid.in_(wamids)
        )
    )
    seen: dict[str, set[str]] = {}
    for wamid, each in rows:
        seen.setdefault(wamid, set()).add(each)
    return seen
