"""Changes to tracked messages after their first record: failures, errors, details, statuses, edits.

The workers and routes call these instead of writing `Message` rows themselves. Functions taking a
session write inside the caller's transaction; functions taking the database run one of their own.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xypr.backends.db.engine import Database
from xypr.state.details import MessageDetails
from xypr.state.models import Message, MessageStatus
from xypr.state.service import get_message
from xypr.state.status import StatusStep, advance

__all__ = [
    "ERROR_MAX_CHARS",
    "apply_status_step",
    "mark_failed",
    "merge_details",
    "note_error",
    "record_agent_send",
    "record_status_seen",
    "rewrite_text",
    "update_tracked",
]

# What a message keeps of an error (Meta's and Genesys' texts can be long).
ERROR_MAX_CHARS = 2000


async def mark_failed(database: Database, *, tenant_id: str, message_id: str, error: str) -> None:
    """Settle a tracked message as `failed` with its reason (`"<Reason>: <text>"`); one transaction."""
    async with database.session() as session:
        message = await get_message(session, tenant_id=tenant_id, message_id=message_id)
        if message is not None:
            message.status = "failed"
            message.error = error[:ERROR_MAX_CHARS]


async def note_error(database: Database, *, tenant_id: str, message_id: str, error: str) -> None:
    """Keep the last error on a tracked message, its status unchanged (a replay must still send it)."""
    async with database.session() as session:
        message = await get_message(session, tenant_id=tenant_id, message_id=message_id)
        if message is not None:
            message.error = error[:ERROR_MAX_CHARS]


async def merge_details(session: AsyncSession, *, tenant_id: str, message_id: str, update: MessageDetails) -> None:
    """Set the keys `update` sets in a tracked message's details, the others kept."""
    message = await get_message(session, tenant_id=tenant_id, message_id=message_id)
    if message is not None:
        message.details = (message.details or MessageDetails()).merged(update)


async def rewrite_text(session: AsyncSession, *, tenant_id: str, wamid: str, text: str | None) -> None:
    """A customer edited a message: later quotes of it show what it says now (nothing without a text)."""
    original = await session.scalar(
        select(Message).where(Message.tenant_id == tenant_id, Message.direction == "inbound", Message.wamid == wamid)
    )
    if original is not None and text:
        original.text = text


async def record_status_seen(session: AsyncSession, *, tenant_id: str, wamid: str, status: str) -> None:
    """Record a WhatsApp status of a wamid; IntegrityError when it was recorded before (its dedupe key)."""
    session.add(MessageStatus(tenant_id=tenant_id, wamid=wamid, status=status))
    await session.flush()


def apply_status_step(message: Message, step: StatusStep, *, error: str) -> None:
    """Move a tracked message as a status step says (`advance`); a `Failed` step keeps `error`."""
    if step.status != message.status:
        message.status = step.status
    if step.receipt == "Failed":
        message.error = error[:ERROR_MAX_CHARS]


def update_tracked(
    message: Message,
    *,
    created: bool,
    status: str,
    text: str | None,
    error: str | None,
    wamid: str | None,
    genesys_message_id: str | None,
) -> None:
    """What the state API's tracking call tells of a message: a new row takes `status`, a known one only
    moves forward (`advance`); text and error replace, the other side's id only fills a gap."""
    message.status = status if created else advance(message.status, status).status
    if text is not None:
        message.text = text
    if error is not None:
        message.error = error
    if wamid and not message.wamid:
        message.wamid = wamid
    if genesys_message_id and not message.genesys_message_id:
        message.genesys_message_id = genesys_message_id


async def record_agent_send(
    database: Database,
    *,
    tenant_id: str,
    conversation_id: str,
    kind: str,
    text: str | None,
    details: MessageDetails,
) -> str:
    """Track a message an agent sends from Xypr itself (widget, template API), before it is queued; its id."""
    async with database.session() as session:
        message = Message(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            direction="outbound",
            kind=kind,
            status="received",
            text=text,
            details=details,
        )
        session.add(message)
        await session.flush()
        return message.id
