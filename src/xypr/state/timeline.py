"""What happened to a message, in order: received, sent on, delivered, read, failed, dead-lettered, retried
(replayed from the dead letters) or discarded.

Built from the tracking tables (`messages`, `message_statuses`), the dead letters and the audit log's replays
and discards of them (which name the message's ids); found by wamid,
Genesys message id or our id, or, for a conversation id or a customer's wa_id, the list of that
conversation's messages to pick from. Tenant people only ever find their own tenant's messages.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select

from xypr.audit.models import AuditEntry
from xypr.auth.principal import Principal
from xypr.backends.db.base import as_utc
from xypr.state.backends import StateBackends
from xypr.state.models import Conversation, Message, MessageStatus
from xypr.state.status import reported_order

__all__ = ["MessageSummary", "TimelineEvent", "TimelineSearch", "search_messages"]

_CONVERSATION_LIMIT = 50
_AUDIT_SCAN = 500
# Events at equal times keep this order: received (0), transformed (1), then the statuses in the order they
# happen (from 1 + `reported_order`, so sent is 2 and failed 6), dead-lettered (8), retried or discarded (9).
_FIRST_STATUS = 1
_STATUS_LABEL = {
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
    "played": "Played",
    "failed": "Failed",
}


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One step: when, what (a label people read), and the detail (a reason, an error)."""

    at: datetime
    step: str
    label: str
    detail: str = ""
    rank: int = 0


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """A tracked message's identifiers and where it is now."""

    id: str
    tenant_id: str
    direction: str
    kind: str
    status: str
    wamid: str | None
    genesys_message_id: str | None
    conversation_id: str | None
    genesys_conversation_id: str | None
    wa_id: str | None
    created_at: datetime
    error: str | None = None
    events: list[TimelineEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TimelineSearch:
    """A search's answer: one message with its timeline, or a conversation's messages, or nothing."""

    query: str
    messages: list[MessageSummary]

    @property
    def timeline(self) -> MessageSummary | None:
        """The message when exactly one was found (its `events` filled in)."""
        return self.messages[0] if len(self.messages) == 1 and self.messages[0].events else None


def _summary(message: Message, conversation: Conversation | None) -> MessageSummary:
    return MessageSummary(
        id=message.id, tenant_id=message.tenant_id, direction=message.direction, kind=message.kind,
        status=message.status, wamid=message.wamid, genesys_message_id=message.genesys_message_id,
        conversation_id=message.conversation_id,
        genesys_conversation_id=conversation.genesys_conversation_id if conversation else None,
        wa_id=conversation.wa_id if conversation else None, created_at=as_utc(message.created_at),
        error=message.error,
    )  # fmt: skip


async def _events(backends: StateBackends, message: Message) -> list[TimelineEvent]:
    received = as_utc(message.created_at)
    source = "WhatsApp" if message.direction == "inbound" else "Genesys"
    target = "Genesys" if message.direction == "inbound" else "WhatsApp"
    events = [
        TimelineEvent(received, "received", f"Received from {source}", f"{message.kind} message", 0),
        TimelineEvent(received, "transformed", f"Transformed for {target}", "", 1),
    ]
    wamids = {message.wamid} if message.wamid else set()
    if message.details is not None and message.details.wamids:
        wamids |= set(message.details.wamids)
    seen_statuses: set[str] = set()
    if message.direction == "outbound" and wamids:
        async with backends.database.session() as session:
            statuses = (
                await session.scalars(
                    select(MessageStatus).where(
                        MessageStatus.tenant_id == message.tenant_id, MessageStatus.wamid.in_(wamids)
                    )
                )
            ).all()
        for status in statuses:
            if status.status in seen_statuses:
                continue  # one event per status for a split text (its parts share the steps)
            seen_statuses.add(status.status)
            detail = (message.error or "") if status.status == "failed" else f"reported by WhatsApp for {status.wamid}"
            events.append(
                TimelineEvent(
                    as_utc(status.created_at),
                    status.status,
                    _STATUS_LABEL.get(status.status, status.status.title()),
                    detail,
                    _FIRST_STATUS + reported_order(status.status),
                )
            )
    updated = as_utc(message.updated_at)
    if message.status in ("sent", "delivered", "read") and "sent" not in seen_statuses:
        events.append(
            TimelineEvent(
                updated,
                "sent",
                f"Sent to {target}",
                "accepted by the upstream API",
                _FIRST_STATUS + reported_order("sent"),
            )
        )
    if message.status == "failed" and "failed" not in seen_statuses:
        events.append(
            TimelineEvent(
                updated,
                "failed",
                "Failed",
                message.error or "no reason recorded",
                _FIRST_STATUS + reported_order("failed"),
            )
        )
    ids = {each for each in (*wamids, message.genesys_message_id, message.id) if each}
    handled = await _dead_letter_actions(backends, message.tenant_id, ids)
    waiting = await _dead_letters_of(backends, message, wamids)
    letters = {letter_id: (dead_at, error) for letter_id, dead_at, error in waiting}
    for entry in handled:  # letters replayed or discarded: gone from the broker, remembered by the audit log
        facts = entry.details or {}
        dead_at = _parsed(facts.get("dead_at"))
        if entry.target and entry.target not in letters and dead_at is not None:
            letters[entry.target] = (dead_at, _with_attempts(facts))
    for dead_at, error in letters.values():
        events.append(TimelineEvent(datetime.fromtimestamp(dead_at, UTC), "dead_lettered", "Dead-lettered", error, 8))
    for entry in handled:
        if entry.action == "dead_letter.replay":
            events.append(TimelineEvent(as_utc(entry.at), "retried", "Retried", f"replayed by {entry.actor}", 9))
        else:
            reason = (entry.details or {}).get("reason") or "no reason recorded"
            events.append(TimelineEvent(as_utc(entry.at), "discarded", "Discarded", f"by {entry.actor}: {reason}", 9))
    return sorted(events, key=lambda event: (event.at, event.rank))


def _parsed(value: Any) -> float | None:
    """A time kept in the audit log (ISO 8601), in seconds; None when absent or unreadable."""
    try:
        return datetime.fromisoformat(str(value)).timestamp() if value else None
    except ValueError:
        return None


def _with_attempts(facts: dict[str, Any]) -> str:
    error = str(facts.get("error") or "")
    attempts = facts.get("attempts")
    return f"{error} (after {attempts} attempts)" if isinstance(attempts, int) and attempts > 1 else error


async def _dead_letter_actions(backends: StateBackends, tenant_id: str, ids: set[str]) -> list[AuditEntry]:
    """The replays and discards of dead letters that carried this message, oldest first (from the audit log,
    whose entries name the message's ids; the newest few hundred of the tenant's are enough for a timeline)."""
    async with backends.database.session() as session:
        entries = (
            await session.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.tenant_id == tenant_id,
                    AuditEntry.action.in_(("dead_letter.replay", "dead_letter.discard")),
                )
                .order_by(AuditEntry.at.desc())
                .limit(_AUDIT_SCAN)
            )
        ).all()
    return [
        entry
        for entry in reversed(entries)
        if ids & {str(each) for each in ((entry.details or {}).get("messages") or [])}
    ]


async def _dead_letters_of(backends: StateBackends, message: Message, wamids: set[str]) -> list[tuple[str, float, str]]:
    """(id, time, error) of the dead letters carrying this message (found by its ids in the event body)."""
    needles = [each.encode() for each in (*wamids, message.genesys_message_id, message.id) if each]
    try:
        letters = await backends.broker.dead_letters(limit=1000)
    except Exception:
        return []
    return [
        (letter.id, letter.dead_at.timestamp(), letter.error)
        for letter in letters
        if letter.key.startswith(f"{message.tenant_id}:") and any(needle in letter.body for needle in needles)
    ]


async def search_messages(backends: StateBackends, principal: Principal, query: str) -> TimelineSearch:
    """Find by wamid, Genesys message id or our message id (→ its timeline), or by conversation id (ours or
    Genesys') or wa_id (→ that conversation's latest messages)."""
    text = query.strip()
    if not text:
        return TimelineSearch(text, [])
    scope = None if principal.is_platform_admin else (principal.tenant_id or "-")
    async with backends.database.session() as session:
        by_id = select(Message).where(
            or_(Message.wamid == text, Message.genesys_message_id == text, Message.id == text)
        )
        if scope:
            by_id = by_id.where(Message.tenant_id == scope)
        found = list((await session.scalars(by_id.limit(_CONVERSATION_LIMIT))).all())
        if not found:
            conversations = select(Conversation).where(
                or_(Conversation.id == text, Conversation.genesys_conversation_id == text, Conversation.wa_id == text)
            )
            if scope:
                conversations = conversations.where(Conversation.tenant_id == scope)
            matching = list((await session.scalars(conversations.limit(_CONVERSATION_LIMIT))).all())
            if matching:
                found = list(
                    (
                        await session.scalars(
                            select(Message)
                            .where(Message.conversation_id.in_([c.id for c in matching]))
                            .order_by(Message.created_at.desc())
                            .limit(_CONVERSATION_LIMIT)
                        )
                    ).all()
                )
        conversation_ids = {m.conversation_id for m in found if m.conversation_id}
        known = {
            c.id: c
            for c in (await session.scalars(select(Conversation).where(Conversation.id.in_(conversation_ids)))).all()
        }
    summaries = [_summary(m, known.get(m.conversation_id or "")) for m in found]
    if len(found) == 1:
        summaries = [dataclasses.replace(summaries[0], events=await _events(backends, found[0]))]
    return TimelineSearch(text, summaries)
