"""What the agent sends from the widget, by the path that fits each form.

- Through **Genesys** (the agentless messages API, into the customer's active conversation): text,
  reply buttons, lists and templates. Genesys records them in its transcript and posts them to our
  outbound webhook, where the ordinary outbound path turns them into WhatsApp messages (a
  `Notification` into a template) — one path, the same tracking, ticks and failure receipts.
- **Straight to WhatsApp** (like `/transform/outbound/send/template`): reactions, replies quoting a
  customer message and uploaded media, which Open Messaging cannot carry.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Final

import httpx

from xypr.backends.broker.base import BrokerUnavailable
from xypr.core.errors import BadRequest, Conflict, ServiceUnavailable
from xypr.core.logging import get_logger
from xypr.events import MediaUpload, WhatsAppRequest
from xypr.genesys.client import api_base
from xypr.runtime import Runtime
from xypr.state.details import MessageDetails
from xypr.state.messages import mark_failed, record_agent_send
from xypr.state.models import Conversation
from xypr.tenants.service import TenantRuntime
from xypr.topology import SEND_WHATSAPP
from xypr.transform.outbound import recipient
from xypr.whatsapp.models import customer_id_type

__all__ = ["AGENTLESS_PATH", "queue_whatsapp", "send_through_genesys", "store_attachment"]

log = get_logger(__name__)

AGENTLESS_PATH: Final = "/api/v2/conversations/messages/agentless"


async def send_through_genesys(
    runtime: Runtime,
    tenant: TenantRuntime,
    conversation: Conversation,
    *,
    text: str,
    content: list[dict[str, Any]] | None = None,
) -> str:
    """Post a message into the customer's active Genesys conversation as the integration; Genesys's id."""
    if not tenant.active:
        raise Conflict(f"tenant {tenant.id} is {tenant.status}: nothing is sent for it")
    body: dict[str, Any] = {
        "fromAddress": tenant.genesys_integration_id,
        # The address of the customer's Genesys conversation: the id Genesys knows them by.
        "toAddress": conversation.genesys_customer_id,
        "toAddressMessengerType": "open",
        "useExistingActiveConversation": True,
        "textBody": text,
    }
    if content:
        body["content"] = content
    url = f"{api_base(tenant.genesys_region, runtime.settings.genesys_api_url)}{AGENTLESS_PATH}"
    token = await runtime.genesys.token(tenant.genesys_credentials)
    for attempt in range(2):
        try:
            response = await runtime.http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"Genesys Cloud unreachable ({type(exc).__name__}); try again") from exc
        if response.status_code == 401 and attempt == 0:
            token = await runtime.genesys.token(tenant.genesys_credentials, stale=token)
            continue
        break
    if response.status_code in (400, 404, 422):
        message = _genesys_message(response)
        raise BadRequest(f"Genesys Cloud refused the message: {message}")
    if not response.is_success:
        raise ServiceUnavailable(f"Genesys Cloud answered HTTP {response.status_code}; try again")
    answer = response.json()
    log.info("widget.sent_through_genesys", tenant_id=tenant.id, conversation_id=conversation.id)
    return str(answer.get("id") or "")


def _genesys_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.status_code)
    except ValueError:
        return str(response.status_code)


async def store_attachment(runtime: Runtime, tenant: TenantRuntime, *, data: bytes, mime_type: str, name: str) -> str:
    """Keep an agent's upload in the object store (whatsapp-api uploads it to Meta); its object key."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)[:120] or "attachment"
    key = f"tenant/{tenant.id}/outbound/widget/{uuid.uuid4().hex}/{safe}"
    await runtime.store.put(key, data, content_type=mime_type)
    return key


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
    """Track an agent message and queue its Graph send (`payload`: the type's part of the body); our id."""
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
        raise ServiceUnavailable("cannot queue the message right now; retry later") from exc
    log.info("widget.queued", tenant_id=tenant.id, message_id=message_id, kind=kind)
    return message_id
