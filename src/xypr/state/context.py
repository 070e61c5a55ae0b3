"""Conversation context: what Xypr and its tools know about a conversation, in the database, cached (cache-aside).

A context is a flat JSON object. Some keys are facts Xypr keeps itself from the conversation row
(`MAINTAINED_FACTS`: who the customer is, the Genesys conversation, when the customer last wrote);
a write cannot change those, it replaces every other key. `language` is an ordinary key: Meta's
inbound webhooks carry no language, so it is known only once a tool or an agent writes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from xypr.backends.db.base import as_utc
from xypr.core.errors import BadRequest, NotFound, PayloadTooLarge
from xypr.core.logging import get_logger
from xypr.state.backends import StateBackends
from xypr.state.models import Conversation

__all__ = [
    "CONTEXT_TTL_SECONDS",
    "MAINTAINED_FACTS",
    "MAX_CONTEXT_BYTES",
    "context_key",
    "context_view",
    "forget_context",
    "get_context",
    "put_context",
]

log = get_logger(__name__)

# Short enough that a read racing a write (cache-aside's known window) heals by itself soon.
CONTEXT_TTL_SECONDS: Final = 300.0
MAX_CONTEXT_BYTES: Final = 64 * 1024
MAINTAINED_FACTS: Final = (
    "conversation_id",
    "customer_id",
    "customer_name",
    "genesys_conversation_id",
    "last_customer_message_at",
)


def context_key(tenant_id: str, conversation_id: str) -> str:
    """The cache key of a context, under the tenant's prefix (`conversation_id`: ours or Genesys')."""
    return f"{tenant_id}:context:{conversation_id}"


def context_view(conversation: Conversation) -> dict[str, Any]:
    """The context of a conversation: the stored keys plus the facts Xypr maintains (pure)."""
    view: dict[str, Any] = dict(conversation.context or {})
    facts: dict[str, Any] = {
        "conversation_id": conversation.id,
        "customer_id": conversation.wa_id,
        "customer_name": conversation.customer_name,
        "genesys_conversation_id": conversation.genesys_conversation_id,
        "last_customer_message_at": _iso(conversation.last_customer_message_at),
    }
    view.update({name: value for name, value in facts.items() if value is not None})
    return view


async def get_context(backends: StateBackends, *, tenant_id: str, conversation_id: str) -> dict[str, Any] | None:
    """The context of a conversation of the tenant (by our id or the Genesys conversation id); None if unknown."""
    key = context_key(tenant_id, conversation_id)
    cached = await backends.cache.get(key)
    if cached is not None:
        view: dict[str, Any] = orjson.loads(cached)
        return view
    async with backends.database.session() as session:
        conversation = await _conversation(session, tenant_id=tenant_id, conversation_id=conversation_id)
        if conversation is None:
            return None
        view = context_view(conversation)
    await backends.cache.set(key, orjson.dumps(view), ttl=CONTEXT_TTL_SECONDS)
    return view


async def put_context(
    backends: StateBackends, *, tenant_id: str, conversation_id: str, context: dict[str, Any]
) -> dict[str, Any]:
    """Replace the writable keys of a conversation's context; returns the context as now stored."""
    stored = {name: value for name, value in context.items() if name not in MAINTAINED_FACTS}
    async with backends.database.session() as session:
        # An unknown conversation is a 404 whatever the body holds.
        conversation = await _conversation(session, tenant_id=tenant_id, conversation_id=conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}")
        try:
            encoded = orjson.dumps(stored)
        except TypeError as exc:  # e.g. an integer beyond 64 bits
            raise BadRequest(f"context: not storable as JSON: {exc}", field="context") from exc
        if len(encoded) > MAX_CONTEXT_BYTES:
            raise PayloadTooLarge(f"context is {len(encoded)} bytes; at most {MAX_CONTEXT_BYTES} are kept")
        # Stored as the JSON round trip of what was encoded, so the database holds exactly what we measured.
        conversation.context = orjson.loads(encoded)
        view = context_view(conversation)
        ids = [conversation.id, conversation.genesys_conversation_id]
    # Invalidate rather than set: a concurrent writer's older value can then never be cached last.
    await forget_context(backends, tenant_id=tenant_id, conversation_ids=[conversation_id, *ids])
    log.info("context.written", tenant_id=tenant_id, conversation_id=view["conversation_id"], keys=len(stored))
    return view


async def forget_context(backends: StateBackends, *, tenant_id: str, conversation_ids: Iterable[str | None]) -> None:
    """Drop the cached context of a conversation under each of its ids (after its row changed)."""
    keys = sorted({context_key(tenant_id, each) for each in conversation_ids if each})
    if keys:
        await backends.cache.delete(*keys)


async def _conversation(session: AsyncSession, *, tenant_id: str, conversation_id: str) -> Conversation | None:
    # Our id first (primary key); the agent widget knows only the Genesys conversation id.
    rows = await session.scalars(
        select(Conversation)
        .where(
            Conversation.tenant_id == tenant_id,
            or_(Conversation.id == conversation_id, Conversation.genesys_conversation_id == conversation_id),
        )
        .limit(2)
    )
    found = list(rows)
    return next((row for row in found if row.id == conversation_id), found[0] if found else None)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return as_utc(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")
