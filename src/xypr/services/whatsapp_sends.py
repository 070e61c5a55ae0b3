"""A message sent straight to WhatsApp, not through Genesys: the widget's reactions, quoted replies and
uploads, and `POST /transform/outbound/send/template`. Tracked first, then queued for whatsapp-api on the
customer's key, so it keeps its order with the agent's other messages."""

from __future__ import annotations

import time
from typing import Any

from xypr.backends.broker.base import BrokerUnavailable
from xypr.core.errors import BackendUnavailable, Conflict
from xypr.core.logging import get_logger
from xypr.events import MediaUpload, WhatsAppRequest
from xypr.runtime import Runtime
from xypr.state.details import MessageDetails
from xypr.state.messages import mark_failed, record_agent_send
from xypr.state.models import Conversation
from xypr.tenants.service import TenantRuntime
from xypr.topology import SEND_WHATSAPP
from xypr.transform.outbound import recipient
from xypr.whatsapp.models import customer_id_type

__all__ = ["queue_whatsapp"]

log = get_logger(__name__)


async def queue_whatsapp(
    runtime: Runtime,
    tenant: TenantRuntime,
    conversation: Conversation,
    *,
    kind: str,
    text: str | None,
    payload: dict[str, Any],
    details: MessageDetails,
    correlation_id: str,
    media: list[MediaUpload] | None = None,
) -> str:
    """Track a message sent straight to WhatsApp and queue its Graph send for whatsapp-api; our message id.

    `payload` is the type's part of the Graph body (the recipient is the conversation's customer). When the
    broker cannot take it, the tracked message is failed (nothing was sent) and the caller gets a 503."""
    if not tenant.active:
        raise Conflict(f"tenant {tenant.id} is {tenant.status}: nothing is sent for it")
    send = {"messaging_product": "whatsapp", "recipient_type": "individual", **recipient(conversation.wa_id, None)}
    send.update(payload)
    message_id = await record_agent_send(
        runtime.database, tenant_id=tenant.id, conversation_id=conversation.id, kind=kind, text=text, details=details
    )
    event = WhatsAppRequest(
        tenant_id=tenant.id,
        kind="message",
        bodies=[send],
        message_id=message_id,
        customer_id=conversation.genesys_customer_id,
        customer_id_type=customer_id_type(conversation.genesys_customer_id),
        accepted_at=time.time(),
        correlation_id=correlation_id,
        media=media or [],
    )
    try:
        # The key the outbound path uses for this customer (`to.id`): one order with the agent's messages.
        await runtime.broker.publish(SEND_WHATSAPP, [event.to_outgoing(customer=conversation.genesys_customer_id)])
    except BrokerUnavailable as exc:
        await mark_failed(
            runtime.database,
            tenant_id=tenant.id,
            message_id=message_id,
            error="ServerError: the broker was unavailable; nothing was sent",
        )
        raise BackendUnavailable(f"cannot queue the {kind} right now; retry later") from exc
    log.info("whatsapp_send.queued", tenant_id=tenant.id, message_id=message_id, kind=kind)
    return message_id
