"""State operations used by the workers: conversation mapping and message tracking, tenant-scoped."""

from __future__ import annotations

import functools
import sqlite3
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from xypr.backends.db.base import as_utc, new_id, utcnow
from xypr.backends.db.engine import Database
from xypr.backends.db.hot import SqliteHot, as_datetime, as_json, sqlite_statement
from xypr.core.coalesce import Coalescer
from xypr.state.details import MessageDetails, stored_details
from xypr.state.models import Conversation, Message

__all__ = [
    "CUSTOMER_SERVICE_WINDOW",
    "ConversationFacts",
    "InboundRecord",
    "OutboundRecord",
    "SendState",
    "TrackedCustomerMessage",
    "conversation_facts",
    "find_conversation",
    "find_conversation_of_genesys_customer",
    "get_message",
    "insert_agent_message",
    "latest_inbound_wamid",
    "mark_sent",
    "mark_sent_to_whatsapp",
    "record_inbound",
    "record_outbound",
    "send_state",
    "track_customer_message",
    "upsert_conversation",
    "window_open",
]

# WhatsApp's customer-service window: free-form messages while the customer wrote less than this ago.
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)

# Statuses after which a message must not be sent again.
SETTLED = frozenset({"sent", "delivered", "read", "failed"})


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """Outcome of recording a customer message: its row, its conversation, and whether it is new."""

    message: Message
    conversation: Conversation
    created: bool


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """Outcome of recording an agent message."""

    message: Message
    conversation_id: str | None
    created: bool


async def upsert_conversation(
    session: AsyncSession,
    *,
    tenant_id: str,
    wa_id: str,
    bsuid: str | None = None,
    customer_name: str | None = None,
    customer_wrote_at: datetime | None = None,
) -> Conversation:
    """The conversation of a customer, created on first contact; name and last-message time refreshed."""
    conversation = await find_conversation(session, tenant_id=tenant_id, wa_id=wa_id)
    if conversation is None:
        conversation = Conversation(tenant_id=tenant_id, wa_id=wa_id, genesys_customer_id=wa_id)
        session.add(conversation)
    if bsuid:
        conversation.bsuid = bsuid
    if customer_name:
        conversation.customer_name = customer_name
    last = conversation.last_customer_message_at
    if customer_wrote_at is not None and (last is None or as_utc(last) < customer_wrote_at):
        # Meta does not deliver in order: keep the latest time seen, not the last one processed.
        conversation.last_customer_message_at = customer_wrote_at
    await session.flush()
    return conversation


async def find_conversation(session: AsyncSession, *, tenant_id: str, wa_id: str) -> Conversation | None:
    """The conversation of `wa_id` (phone or BSUID) within a tenant."""
    return await session.scalar(
        select(Conversation).where(Conversation.tenant_id == tenant_id, Conversation.wa_id == wa_id)
    )


async def find_customer(session: AsyncSession, *, tenant_id: str, customer: str) -> Conversation | None:
    """The conversation of a customer named by WhatsApp id or BSUID; an exact `wa_id` match before a BSUID one."""
    rows = await session.scalars(
        select(Conversation)
        .where(Conversation.tenant_id == tenant_id, or_(Conversation.wa_id == customer, Conversation.bsuid == customer))
        .order_by(Conversation.wa_id != customer)
        .limit(1)
    )
    return rows.first()


# The fields of a conversation an admin may set by hand (the state manager's `PUT /mapping`).
MAPPED_FIELDS = ("bsuid", "customer_name", "genesys_conversation_id")


async def map_customer(
    session: AsyncSession, *, tenant_id: str, customer: str, fields: dict[str, str | None]
) -> tuple[Conversation, bool]:
    """Map a customer (WhatsApp id or BSUID) to a conversation, created when none has it, with `fields`
    (a subset of `MAPPED_FIELDS`) set; returns the conversation, refreshed, and whether it is new."""
    unknown = set(fields) - set(MAPPED_FIELDS)
    if unknown:
        raise ValueError(f"not a mapped field: {', '.join(sorted(unknown))}")
    existing = await find_customer(session, tenant_id=tenant_id, customer=customer)
    conversation = existing or await upsert_conversation(session, tenant_id=tenant_id, wa_id=customer)
    for field, value in fields.items():
        setattr(conversation, field, value)
    await session.flush()
    await session.refresh(conversation)
    return conversation, existing is None


async def find_conversation_of_genesys_customer(
    session: AsyncSession, *, tenant_id: str, genesys_customer_id: str
) -> Conversation | None:
    """The conversation Genesys addresses as `genesys_customer_id` (its `channel.to.id`), whatever the
    customer's WhatsApp id is now; the latest active one should a recycled number name two."""
    return await session.scalar(
        select(Conversation)
        .where(Conversation.tenant_id == tenant_id, Conversation.genesys_customer_id == genesys_customer_id)
        .order_by(Conversation.updated_at.desc())
        .limit(1)
    )


async def get_message(session: AsyncSession, *, tenant_id: str, message_id: str) -> Message | None:
    """A tracked message by our id, only within its tenant."""
    # By primary key; the tenant check is one no index can serve (see `_SEND_STATE`).
    return await session.scalar(select(Message).where(Message.id == message_id, Message.tenant_id + "" == tenant_id))


async def latest_inbound_wamid(
    session: AsyncSession, *, tenant_id: str, conversation_id: str, genesys_message_id: str | None = None
) -> str | None:
    """The wamid of a customer message of a conversation: the one Genesys knows as `genesys_message_id`
    when given and known, else the latest one recorded (for read receipts and typing indicators)."""
    query = select(Message.wamid).where(
        Message.tenant_id == tenant_id,
        Message.conversation_id == conversation_id,
        Message.direction == "inbound",
        Message.wamid.is_not(None),
    )
    if genesys_message_id:
        named = await session.scalar(query.where(Message.genesys_message_id == genesys_message_id).limit(1))
        if named:
            return named
    return await session.scalar(query.order_by(Message.created_at.desc()).limit(1))


async def record_inbound(
    session: AsyncSession,
    *,
    conversation: Conversation,
    wamid: str,
    kind: str,
    text: str | None,
    details: MessageDetails | None = None,
) -> InboundRecord:
    """Track a customer message once per `(tenant, wamid)`; a redelivery returns the existing row."""
    existing = await session.scalar(
        select(Message).where(
            Message.tenant_id == conversation.tenant_id, Message.direction == "inbound", Message.wamid == wamid
        )
    )
    if existing is not None:
        return InboundRecord(existing, conversation, created=False)
    message = Message(
        tenant_id=conversation.tenant_id,
        conversation_id=conversation.id,
        direction="inbound",
        wamid=wamid,
        kind=kind,
        status="received",
        text=text,
        details=details,
    )
    session.add(message)
    await session.flush()
    return InboundRecord(message, conversation, created=True)


async def record_outbound(
    session: AsyncSession,
    *,
    tenant_id: str,
    genesys_message_id: str,
    conversation_id: str | None,
    kind: str,
    text: str | None,
    details: MessageDetails | None = None,
) -> OutboundRecord:
    """Track an agent message once per `(tenant, genesys message id)`, in its conversation when known;
    `details` are merged into a known row unless it is settled."""
    existing = await session.scalar(
        select(Message).where(
            Message.tenant_id == tenant_id,
            Message.direction == "outbound",
            Message.genesys_message_id == genesys_message_id,
        )
    )
    if existing is not None:
        if details is not None and existing.status not in SETTLED:
            existing.details = (existing.details or MessageDetails()).merged(details)
        return OutboundRecord(existing, existing.conversation_id, created=False)
    message = Message(
        tenant_id=tenant_id,
        conversation_id=conversation_id,
        direction="outbound",
        genesys_message_id=genesys_message_id,
        kind=kind,
        status="received",
        text=text,
        details=details,
    )
    session.add(message)
    await session.flush()
    return OutboundRecord(message, conversation_id, created=True)


@dataclass(frozen=True, slots=True)
class TrackedCustomerMessage:
    """A customer message tracked for the first time, with what the transform needs of its conversation."""

    message_id: str
    conversation_id: str
    customer_name: str | None
    # The id Genesys knows the customer by (`Conversation.genesys_customer_id`).
    genesys_customer_id: str
    # The conversation's Genesys id, once Genesys answered one (`prefetchConversationId`).
    genesys_conversation_id: str | None


@dataclass(frozen=True, slots=True)
class SendState:
    """What a sender needs to know of a tracked message before sending it."""

    status: str
    conversation_id: str | None
    genesys_conversation_id: str | None
    details: MessageDetails | None


@dataclass(frozen=True, slots=True)
class ConversationFacts:
    """What the outbound path needs of a conversation: its id, the customer's latest message time and
    their WhatsApp id now (where sends go)."""

    id: str
    last_customer_message_at: datetime | None
    wa_id: str


_UPSERT_CONVERSATION = """
INSERT INTO conversations (id, tenant_id, wa_id, genesys_customer_id, bsuid, customer_name, last_customer_message_at,
                           created_at, updated_at)
VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $7)
ON CONFLICT (tenant_id, wa_id) DO UPDATE SET
    bsuid = COALESCE(excluded.bsuid, conversations.bsuid),
    customer_name = COALESCE(excluded.customer_name, conversations.customer_name),
    last_customer_message_at = CASE
        WHEN conversations.last_customer_message_at IS NULL THEN excluded.last_customer_message_at
        WHEN excluded.last_customer_message_at > conversations.last_customer_message_at
            THEN excluded.last_customer_message_at
        ELSE conversations.last_customer_message_at
    END,
    updated_at = excluded.updated_at
RETURNING id, customer_name, genesys_customer_id, genesys_conversation_id
"""

_INSERT_MESSAGE = """
INSERT INTO messages (id, tenant_id, conversation_id, direction, wamid, genesys_message_id, kind, status, text,
                      details, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'received', $8, $9, $10, $10)
ON CONFLICT DO NOTHING
RETURNING id
"""

# PostgreSQL: `_UPSERT_CONVERSATION` and `_INSERT_MESSAGE` as one statement, one round trip instead of
# four (BEGIN, the two statements, COMMIT). Nothing is written when the wamid is tracked already: the
# conversation upsert reads from `fresh`, which is empty then. Should two deliveries of one new wamid
# race (both find it untracked), both upsert the conversation with the same facts and one inserts the
# row; the other gets no message id back and takes the general path, as a redelivery does.
_TRACK_CUSTOMER_MESSAGE = """
WITH fresh AS (
    SELECT 1 WHERE NOT EXISTS (
        SELECT 1 FROM messages WHERE tenant_id = $2 AND direction = 'inbound' AND wamid = $8
    )
), conversation AS (
    INSERT INTO conversations (id, tenant_id, wa_id, genesys_customer_id, bsuid, customer_name,
                               last_customer_message_at, created_at, updated_at)
    SELECT $1, $2, $3, $3, $4, $5, $6::timestamptz, $7::timestamptz, $7::timestamptz FROM fresh
    ON CONFLICT (tenant_id, wa_id) DO UPDATE SET
        bsuid = COALESCE(excluded.bsuid, conversations.bsuid),
        customer_name = COALESCE(excluded.customer_name, conversations.customer_name),
        last_customer_message_at = CASE
            WHEN conversations.last_customer_message_at IS NULL THEN excluded.last_customer_message_at
            WHEN excluded.last_customer_message_at > conversations.last_customer_message_at
                THEN excluded.last_customer_message_at
            ELSE conversations.last_customer_message_at
        END,
        updated_at = excluded.updated_at
    RETURNING id, customer_name, genesys_customer_id, genesys_conversation_id
), message AS (
    INSERT INTO messages (id, tenant_id, conversation_id, direction, wamid, genesys_message_id, kind, status, text,
                          details, created_at, updated_at)
    SELECT $9, $2, conversation.id, 'inbound', $8, NULL, $10, 'received', $11, $12::json, $7::timestamptz,
           $7::timestamptz
    FROM conversation
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT conversation.id, conversation.customer_name, conversation.genesys_customer_id,
       conversation.genesys_conversation_id, message.id
FROM conversation LEFT JOIN message ON true
"""

# Statements by primary key check the tenant as `tenant_id || '' = $1`: the same test, but one no
# index can serve. With `tenant_id = $1`, PostgreSQL's planner (until statistics exist, e.g. on a new
# database) picks the (tenant_id, …) indexes over the primary key and reads every row of the tenant:
# the bench measured PostgreSQL's CPU per message growing with the table, ~1,900 rows read per lookup.
_SEND_STATE = """
SELECT m.status, m.conversation_id, c.genesys_conversation_id, m.details
FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id
WHERE m.id = $2 AND m.tenant_id || '' = $1
"""

_MARK_SENT_TO_GENESYS = """
UPDATE messages SET status = 'sent', error = NULL, genesys_message_id = COALESCE($3, genesys_message_id),
    updated_at = $4
WHERE id = $2 AND tenant_id || '' = $1
"""

_SET_GENESYS_CONVERSATION = """
UPDATE conversations SET genesys_conversation_id = $3, updated_at = $4 WHERE id = $2 AND tenant_id || '' = $1
"""

_MARK_SENT_TO_WHATSAPP = """
UPDATE messages SET status = 'sent', wamid = $3, details = $4, updated_at = $5 WHERE id = $2 AND tenant_id || '' = $1
"""

_CONVERSATION_FACTS = """
SELECT id, last_customer_message_at, wa_id FROM conversations WHERE tenant_id = $1 AND genesys_customer_id = $2
ORDER BY updated_at DESC LIMIT 1
"""


class _AlreadyTracked(Exception):
    """Raised inside a transaction to roll it back: the message row exists."""


async def track_customer_message(
    database: Database,
    *,
    tenant_id: str,
    wa_id: str,
    wamid: str,
    kind: str,
    text: str | None,
    bsuid: str | None = None,
    customer_name: str | None = None,
    customer_wrote_at: datetime | None = None,
    details: MessageDetails | None = None,
) -> TrackedCustomerMessage | None:
    """The common case of a customer message: one statement on PostgreSQL, a transaction on SQLite.

    Upserts the customer's conversation (name, BSUID, latest customer time) and inserts the message
    row. Returns None, having changed nothing, when the wamid is already tracked: a redelivery, which
    the caller handles with the general path (`record_inbound`), as it may belong to a conversation
    that has moved number since."""
    now, message_id = utcnow(), new_id()
    if not database.is_sqlite:
        async with database.sql() as sql:
            row = await sql.fetchrow(
                _TRACK_CUSTOMER_MESSAGE,
                new_id(),
                tenant_id,
                wa_id,
                bsuid,
                customer_name,
                customer_wrote_at,
                now,
                wamid,
                message_id,
                kind,
                text,
                stored_details(details),
            )
        if row is None or row[4] is None:
            return None
        return TrackedCustomerMessage(message_id, row[0], row[1], row[2], row[3])
    # SQLite has no data-modifying WITH: the same two statements in one transaction, in one call.
    hot = database.hot
    assert isinstance(hot, SqliteHot)
    upsert = sqlite_statement(
        _UPSERT_CONVERSATION, new_id(), tenant_id, wa_id, bsuid, customer_name, customer_wrote_at, now
    )
    stored = stored_details(details)

    def track(connection: sqlite3.Connection) -> Sequence[Any]:
        conversation: Sequence[Any] = connection.execute(*upsert).fetchone()  # an upsert returns its row
        insert = sqlite_statement(
            _INSERT_MESSAGE, message_id, tenant_id, conversation[0], "inbound", wamid, None, kind, text, stored, now
        )
        if connection.execute(*insert).fetchone() is None:
            raise _AlreadyTracked  # leave the conversation as it was
        return conversation

    try:
        conversation = await hot.transact(track)
    except _AlreadyTracked:
        return None
    return TrackedCustomerMessage(message_id, conversation[0], conversation[1], conversation[2], conversation[3])


async def send_state(database: Database, *, tenant_id: str, message_id: str) -> SendState | None:
    """A tracked message's status and its conversation's Genesys id: one statement, no transaction."""
    async with database.sql() as sql:
        row = await sql.fetchrow(_SEND_STATE, tenant_id, message_id)
    return None if row is None else SendState(row[0], row[1], row[2], MessageDetails.load(as_json(row[3])))


@dataclass(frozen=True, slots=True)
class _Sent:
    """One `mark_sent` call, as its batch carries it."""

    tenant_id: str
    message_id: str
    genesys_message_id: str | None
    conversation_id: str | None
    genesys_conversation_id: str | None


async def mark_sent(
    database: Database,
    *,
    tenant_id: str,
    message_id: str,
    genesys_message_id: str | None,
    conversation_id: str | None = None,
    genesys_conversation_id: str | None = None,
) -> None:
    """Record that Genesys accepted a tracked customer message (status `sent`, Genesys' id, no error).

    With `conversation_id` and `genesys_conversation_id` the conversation learns its Genesys id first. The
    records a process makes while one is being written go together in the next (`xypr.core.coalesce`): one
    round trip for many messages."""
    marks = _MARKS.get(database)
    if marks is None:
        # Two batches at once: one waiting on a locked row or a busy pool does not hold up every other record.
        marks = _MARKS[database] = Coalescer(functools.partial(_mark_sent_together, weakref.ref(database)), in_flight=2)
    learning = bool(conversation_id and genesys_conversation_id)
    await marks(
        _Sent(
            tenant_id,
            message_id,
            genesys_message_id or None,
            conversation_id if learning else None,
            genesys_conversation_id if learning else None,
        )
    )


_MARKS: weakref.WeakKeyDictionary[Database, Coalescer[_Sent, None]] = weakref.WeakKeyDictionary()


async def _mark_sent_together(database_ref: weakref.ref[Database], batch: list[_Sent]) -> list[Exception | None]:
    """Record a batch in one round trip; should that fail, each record alone, so that a row failing for a
    reason of its own fails only its own caller."""
    database = database_ref()  # the batches keep no database alive (`_MARKS` is keyed by it)
    if database is None:
        raise RuntimeError("the database of these records is gone")
    try:
        await _write_marks(database, batch)
    except Exception:
        if len(batch) == 1:
            raise
    else:
        return [None] * len(batch)
    outcomes: list[Exception | None] = []
    for each in batch:
        try:
            await _write_marks(database, [each])
        except Exception as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


async def _write_marks(database: Database, batch: list[_Sent]) -> None:
    """The conversations that learned their Genesys id first (a crash between the two leaves the messages
    unsettled, to be sent again, as a crash between the send and this record would), then the messages: each
    a statement per row by primary key, every row of a statement in one round trip, all or none."""
    now = utcnow()
    learned = [
        (each.tenant_id, each.conversation_id, each.genesys_conversation_id, now)
        for each in batch
        if each.conversation_id and each.genesys_conversation_id
    ]
    sent = [(each.tenant_id, each.message_id, each.genesys_message_id, now) for each in batch]
    async with database.sql() as sql:
        if learned:
            await sql.execute_many(_SET_GENESYS_CONVERSATION, learned)
        await sql.execute_many(_MARK_SENT_TO_GENESYS, sent)


async def mark_sent_to_whatsapp(
    database: Database, *, tenant_id: str, message_id: str, wamids: list[str], details: MessageDetails | None
) -> None:
    """Record that Meta accepted every part of an agent message: status `sent`, the first part's wamid in
    `wamid` and every part's in `details.wamids` (Meta reports statuses per part). `details` is the row's
    as read before the send; nothing else writes it meanwhile (the conversation's order holds it)."""
    first = wamids[0] if wamids else None
    sent = (details or MessageDetails()).merged(MessageDetails(wamids=tuple(wamids)))
    async with database.sql() as sql:
        await sql.execute(_MARK_SENT_TO_WHATSAPP, tenant_id, message_id, first, sent.stored(), utcnow())


async def conversation_facts(
    database: Database, *, tenant_id: str, genesys_customer_id: str
) -> ConversationFacts | None:
    """The conversation Genesys addresses as `genesys_customer_id`, if any (as
    `find_conversation_of_genesys_customer`): one statement, no transaction."""
    async with database.sql() as sql:
        row = await sql.fetchrow(_CONVERSATION_FACTS, tenant_id, genesys_customer_id)
    return None if row is None else ConversationFacts(row[0], as_datetime(row[1]), str(row[2]))


async def insert_agent_message(
    database: Database,
    *,
    tenant_id: str,
    conversation_id: str | None,
    genesys_message_id: str,
    kind: str,
    text: str | None,
    details: MessageDetails | None = None,
) -> str | None:
    """Track an agent message in one statement; its row id, or None (nothing written) when Genesys' id
    is tracked already: a redelivery, for the general path (`record_outbound`)."""
    message_id = new_id()
    async with database.sql() as sql:
        inserted = await sql.fetchrow(
            _INSERT_MESSAGE,
            message_id,
            tenant_id,
            conversation_id,
            "outbound",
            None,
            genesys_message_id,
            kind,
            text,
            stored_details(details),
            utcnow(),
        )
    return None if inserted is None else message_id


def window_open(conversation: Conversation | ConversationFacts | None, now: datetime) -> bool:
    """True while the customer's last message is less than 24 hours old (free-form messages allowed)."""
    last = conversation.last_customer_message_at if conversation is not None else None
    return last is not None and now - as_utc(last) <= CUSTOMER_SERVICE_WINDOW
