"""whatsapp-api worker: Graph API sends, once each, within the number's throughput; failures become receipts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import Any

from xypr.backends.storage.base import ObjectNotFound
from xypr.core.errors import PermanentError, TransientError
from xypr.core.logging import get_logger
from xypr.core.metrics import SEND_OUTCOMES
from xypr.core.retry import keep_trying
from xypr.events import MediaUpload, WhatsAppRequest
from xypr.runtime import Runtime
from xypr.services.receipts import publish_failed_receipt
from xypr.stage import Stage
from xypr.state.details import MessageDetails
from xypr.state.messages import mark_failed
from xypr.state.service import SETTLED, SendState, mark_sent_to_whatsapp, send_state
from xypr.tenants.service import TenantRuntime
from xypr.topology import SEND_WHATSAPP
from xypr.whatsapp.callback import PART_TTL_SECONDS, attempt_key, part_key, part_marker
from xypr.whatsapp.client import OutcomeUnknown, TokenExpired
from xypr.whatsapp.errors import receipt_reason
from xypr.whatsapp.throughput import throughput_limit, wait_for_send_slot

__all__ = ["WhatsAppApi"]

log = get_logger(__name__)

# How often a retry looks for the status that would prove an earlier attempt was accepted.
_OUTCOME_POLL_SECONDS = 0.2
# Meta keeps uploaded media 30 days; a retried message reuses its upload well within that.
MEDIA_ID_TTL_SECONDS = 24 * 3600.0


class WhatsAppApi(Stage[WhatsAppRequest]):
    """Consumes `send.whatsapp`."""

    name = "whatsapp-api"
    queue = SEND_WHATSAPP
    event_type = WhatsAppRequest

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(self, event: WhatsAppRequest) -> str:
        """Send every part of one agent message in order; parts already accepted are not sent again."""
        tenant = await self.runtime.tenants.by_id(event.tenant_id)
        if tenant is None:
            raise PermanentError(f"tenant {event.tenant_id} no longer exists")
        if event.kind != "message":
            return await self._status_call(tenant, event)
        tracked: SendState | None = None
        if event.message_id:
            if event.just_tracked:  # handed over in place by the transformer that created the row
                tracked = SendState("received", None, None, MessageDetails.load(event.tracked_details))
            else:
                tracked = await send_state(self.runtime.database, tenant_id=tenant.id, message_id=event.message_id)
            if tracked is not None and tracked.status in SETTLED:
                return "duplicate"
        uploads = {upload.part: upload for upload in event.media}
        wamids: list[str] = []
        for index, body in enumerate(event.bodies):
            message_ref = event.message_id or event.correlation_id
            accepted_key = part_key(tenant.id, message_ref, index)
            done: bytes | None = None
            if not event.just_tracked:  # a row created a moment ago has no earlier attempt to look for
                done = await self.runtime.cache.get(accepted_key)
                if done is None and event.message_id:
                    done = await self._outcome_of_earlier_attempt(tenant.id, event.message_id, index)
            if done is not None:
                wamids.append(done.decode())
                continue
            if index in uploads:
                body = await self._with_media_id(tenant, event, uploads[index], body)
            await self._throttle(tenant)
            wamid = await self._send_part(tenant, event, index, body)
            # Meta accepted the part: from here on only the bookkeeping is retried, never the send.
            await keep_trying(
                functools.partial(self.runtime.cache.set, accepted_key, wamid.encode(), ttl=PART_TTL_SECONDS),
                policy=self.runtime.retry,
                what="whatsapp.part_sent",
            )
            wamids.append(wamid)
        if event.message_id and tracked is not None:
            message_id, details = event.message_id, tracked.details
            await keep_trying(
                lambda: mark_sent_to_whatsapp(
                    self.runtime.database, tenant_id=tenant.id, message_id=message_id, wamids=wamids, details=details
                ),
                policy=self.runtime.retry,
                what="whatsapp.mark_sent",
            )
        log.info("whatsapp.sent", tenant_id=tenant.id, genesys_message_id=event.genesys_message_id, wamids=wamids)
        return "processed"

    async def _send_part(self, tenant: TenantRuntime, event: WhatsAppRequest, index: int, body: dict[str, Any]) -> str:
        """Send one part, its attempt recorded first; the wamid Meta answered."""
        if not event.message_id:
            answer = await self.runtime.graph.send_message(tenant.whatsapp_credentials, body)
            return str((answer.get("messages") or [{}])[0].get("id", ""))
        attempt = attempt_key(tenant.id, event.message_id, index)
        # Meta echoes this in the part's status webhooks: a lost answer can still be matched to the send.
        body = {**body, "biz_opaque_callback_data": part_marker(event.message_id, index)}
        await self.runtime.cache.set(attempt, b"1", ttl=PART_TTL_SECONDS)
        try:
            answer = await self.runtime.graph.send_message(tenant.whatsapp_credentials, body)
        except OutcomeUnknown:
            raise  # the attempt stays recorded: the next try first waits for a status naming it
        except (TransientError, PermanentError):
            # Meta answered with an error: it did not take the part, a new try may send it.
            with contextlib.suppress(Exception):
                await self.runtime.cache.delete(attempt)
            raise
        return str((answer.get("messages") or [{}])[0].get("id", ""))

    async def _outcome_of_earlier_attempt(self, tenant_id: str, message_id: str, index: int) -> bytes | None:
        """The wamid of a part whose earlier attempt has no known outcome, if Meta's statuses show it was
        accepted within `XYPR_SEND_OUTCOME_WAIT_SECONDS`; None when there was no such attempt or no status came."""
        if await self.runtime.cache.get(attempt_key(tenant_id, message_id, index)) is None:
            return None
        accepted = part_key(tenant_id, message_id, index)
        deadline = time.monotonic() + self.runtime.settings.send_outcome_wait_seconds
        while True:
            wamid = await self.runtime.cache.get(accepted)
            if wamid is not None:
                SEND_OUTCOMES.labels("accepted").inc()
                log.info("whatsapp.part_found_accepted", message_id=message_id, part=index, wamid=wamid.decode())
                return wamid
            if time.monotonic() >= deadline:
                SEND_OUTCOMES.labels("unknown").inc()
                log.warning("whatsapp.resend_after_unknown_outcome", message_id=message_id, part=index)
                return None
            await asyncio.sleep(_OUTCOME_POLL_SECONDS)

    async def _status_call(self, tenant: TenantRuntime, event: WhatsAppRequest) -> str:
        """A typing indicator or mark-as-read: no tracking row, no receipt for the agent."""
        try:
            for body in event.bodies:
                await self._throttle(tenant)
                await self.runtime.graph.send_message(tenant.whatsapp_credentials, body)
        except TransientError as exc:
            if event.kind == "typing" and not isinstance(exc, TokenExpired):
                # A late "typing…" is worse than none, and retrying it would hold up the agent's next message.
                log.info("whatsapp.typing_dropped", tenant_id=tenant.id, error=exc.message)
                return "dropped"
            raise
        except PermanentError as exc:
            log.warning("whatsapp.status_call_refused", kind=event.kind, tenant_id=tenant.id, error=exc.message)
            return "refused"
        return "processed"

    async def _with_media_id(
        self, tenant: TenantRuntime, event: WhatsAppRequest, upload: MediaUpload, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Upload the stored attachment to Meta (once per message part) and put its media id in the body."""
        media_key = f"{tenant.id}:wa-media:{event.message_id or event.correlation_id}:{upload.part}"
        cached = await self.runtime.cache.get(media_key)
        if cached is not None:
            media_id = cached.decode()
        else:
            try:
                stored = await self.runtime.store.get(upload.object_key)
            except ObjectNotFound as exc:
                raise PermanentError("the attachment is no longer in the object store", reason="GeneralError") from exc
            media_id = await self.runtime.graph.upload_media(
                tenant.whatsapp_credentials,
                data=stored.data,
                mime_type=upload.mime_type,
                filename=upload.filename or "attachment",
            )
            await self.runtime.cache.set(media_key, media_id.encode(), ttl=MEDIA_ID_TTL_SECONDS)
        kind = str(body.get("type"))
        return {**body, kind: {**body.get(kind, {}), "id": media_id}}

    async def _throttle(self, tenant: TenantRuntime) -> None:
        limit = throughput_limit(tenant.settings, self.runtime.settings.whatsapp_throughput_per_second)
        waited = await wait_for_send_slot(
            self.runtime.cache, tenant_id=tenant.id, phone_number_id=tenant.wa_phone_number_id, per_second=limit
        )
        if waited:
            log.debug("whatsapp.throttled", tenant_id=tenant.id, waited=round(waited, 3))

    async def on_transient(self, event: WhatsAppRequest, error: TransientError) -> None:
        """On Meta 190 (token expired) read the tenant again: an operator may have rotated the token."""
        if isinstance(error, TokenExpired):
            self.runtime.tenants.invalidate()

    async def on_permanent(self, event: WhatsAppRequest, error: PermanentError) -> bool:
        """Tell the agent with a Failed receipt; nothing to dead-letter, the outcome is final."""
        await self._fail(event, error.reason, error.message)
        return False

    async def on_exhausted(self, event: WhatsAppRequest, error: Exception) -> None:
        """Retries ran out: the agent learns it now; the event also goes to the dead letters for replay."""
        code = error.upstream_code if isinstance(error, TransientError) else None
        reason = receipt_reason(code) if code is not None else "ServerError"
        await self._fail(event, reason, f"WhatsApp did not accept the message after retries: {error}")

    async def _fail(self, event: WhatsAppRequest, reason: str, message: str) -> None:
        # The receipt first, then the row: a crash in between repeats the receipt (dropped downstream by its
        # dedupe key) instead of settling the row with no receipt sent.
        if event.genesys_message_id:
            await publish_failed_receipt(
                self.runtime.broker,
                tenant_id=event.tenant_id,
                genesys_message_id=event.genesys_message_id,
                customer_id=event.customer_id,
                customer_id_type=event.customer_id_type,
                reason=reason,
                message=message,
                correlation_id=event.correlation_id,
            )
        if event.message_id:
            await mark_failed(
                self.runtime.database,
                tenant_id=event.tenant_id,
                message_id=event.message_id,
                error=f"{reason}: {message}",
            )
