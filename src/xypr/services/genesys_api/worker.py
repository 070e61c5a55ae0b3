"""genesys-api worker: posts Open Messaging requests, once each, and records what Genesys answered."""

from __future__ import annotations

from xypr.core.errors import PermanentError
from xypr.core.logging import get_logger
from xypr.core.retry import keep_trying
from xypr.events import GenesysRequest
from xypr.runtime import Runtime
from xypr.stage import Stage
from xypr.state.context import forget_context
from xypr.state.messages import note_error
from xypr.state.service import SETTLED, SendState, mark_sent, send_state
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
        # A structured button answer is a customer message too: tracked by its wamid row, sent once.
        tracked: SendState | None = None
        if event.kind in ("message", "structured") and event.message_id:
            if event.just_tracked:  # handed over in place by the transformer that created the row
                tracked = SendState("received", event.conversation_id, event.genesys_conversation_id, None)
            else:
                tracked = await send_state(self.runtime.database, tenant_id=tenant.id, message_id=event.message_id)
            if tracked is not None and tracked.status in SETTLED:
                return "duplicate"
        dedupe = f"{tenant.id}:genesys-sent:{event.dedupe_key}" if event.dedupe_key else None
        if dedupe and await self.runtime.cache.get(dedupe) is not None:
            return "duplicate"

        answer = await self.runtime.genesys.send(tenant.genesys_credentials, event.kind, event.body)

        # Genesys accepted it: from here on only the bookkeeping is retried (in place), never the send.
        if dedupe:
            await keep_trying(
                lambda: self.runtime.cache.set(dedupe, b"1", ttl=DEDUPE_TTL_SECONDS),
                policy=self.runtime.retry,
                what="genesys.dedupe_mark",
            )
        if tracked is not None and event.message_id:
            await self._delivered(event, tracked, answer)
        log.info("genesys.sent", kind=event.kind, tenant_id=tenant.id, genesys_message_id=answer.get("id"))
        return "processed"

    async def _delivered(self, event: GenesysRequest, tracked: SendState, answer: dict[str, object]) -> None:
        """Record Genesys' message id and conversation id (`prefetchConversationId`), refresh the context."""
        answered = answer.get("conversationId")
        genesys_conversation = answered if isinstance(answered, str) and answered else None
        if genesys_conversation == tracked.genesys_conversation_id:
            genesys_conversation = None  # known already: only the message row changes
        await keep_trying(
            lambda: mark_sent(
                self.runtime.database,
                tenant_id=event.tenant_id,
                message_id=event.message_id or "",
                genesys_message_id=str(answer.get("id") or "") or None,
                conversation_id=tracked.conversation_id,
                genesys_conversation_id=genesys_conversation,
            ),
            policy=self.runtime.retry,
            what="genesys.mark_sent",
        )
        # The customer just wrote (name, time, maybe a new Genesys conversation): cached contexts are stale.
        known_ids = {event.conversation_id, tracked.conversation_id, tracked.genesys_conversation_id}
        await keep_trying(
            lambda: forget_context(
                self.runtime, tenant_id=event.tenant_id, conversation_ids=known_ids | {genesys_conversation}
            ),
            policy=self.runtime.retry,
            what="genesys.forget_context",
        )

    async def on_permanent(self, event: GenesysRequest, error: PermanentError) -> bool:
        """Keep the error on the tracked message and dead-letter the request, so it can be replayed after a fix."""
        await self._note_error(event, error.message)
        return True

    async def on_exhausted(self, event: GenesysRequest, error: Exception) -> None:
        """Retries ran out: keep the last error on the tracked message (the request goes to the dead letters)."""
        await self._note_error(event, f"{type(error).__name__}: {error}")

    async def _note_error(self, event: GenesysRequest, error: str) -> None:
        if event.kind != "message" or not event.message_id:
            return
        # The status stays unsettled on purpose: a replayed dead letter must still be sent.
        await note_error(
            self.runtime.database, tenant_id=event.tenant_id, message_id=event.message_id, error=f"Genesys: {error}"
        )
