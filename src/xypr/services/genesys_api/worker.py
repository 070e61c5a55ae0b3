"""genesys-api worker: posts Open Messaging requests, once each, and records what Genesys answered."""

from __future__ import annotations

from xypr.core.errors import PermanentError
from xypr.core.logging import get_logger
from xypr.events import GenesysRequest
from xypr.runtime import Runtime
from xypr.stage import Stage
from xypr.state.models import Conversation
from xypr.state.service import SETTLED, get_message
from xypr.topology import SEND_GENESYS

__all__ = ["GenesysApi"]

log = get_logger(__name__)

# Receipts and events are remembered this long to send each once.
DEDUPE_TTL_SECONDS = 7 * 24 * 3600.0


class GenesysApi(Stage[GenesysRequest]):
    """Consumes `send.genesys`."""

    name = "genesys-api"
    queue = SEND_GENESYS
    event_type = GenesysRequest

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, event: GenesysRequest) -> str:
        """Send one request; a message already accepted by Genesys is not sent again."""
        tenant = await self.runtime.tenants.by_id(event.tenant_id)
        if tenant is None:
            raise PermanentError(f"tenant {event.tenant_id} no longer exists")
        if event.kind == "message" and event.message_id:
            async with self.runtime.database.session() as session:
                tracked = await get_message(session, tenant_id=tenant.id, message_id=event.message_id)
            if tracked is not None and tracked.status in SETTLED:
                return "duplicate"
        dedupe = f"{tenant.id}:genesys-sent:{event.dedupe_key}" if event.dedupe_key else None
        if dedupe and await self.runtime.cache.get(dedupe) is not None:
            return "duplicate"

        answer = await self.runtime.genesys.send(tenant, event.kind, event.body)

        if dedupe:
            await self.runtime.cache.set(dedupe, b"1", ttl=DEDUPE_TTL_SECONDS)
        if event.kind == "message" and event.message_id:
            async with self.runtime.database.session() as session:
                tracked = await get_message(session, tenant_id=tenant.id, message_id=event.message_id)
                if tracked is not None:
                    tracked.status = "sent"
                    tracked.genesys_message_id = answer.get("id") or tracked.genesys_message_id
                genesys_conversation = answer.get("conversationId")
                if genesys_conversation and event.conversation_id:
                    conversation = await session.get(Conversation, event.conversation_id)
                    if conversation is not None and conversation.tenant_id == tenant.id:
                        conversation.genesys_conversation_id = genesys_conversation
        log.info("genesys.sent", kind=event.kind, tenant_id=tenant.id, genesys_message_id=answer.get("id"))
        return "processed"
