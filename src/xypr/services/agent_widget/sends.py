"""What the agent sends from the widget, by the path that fits each form.

- Through **Genesys** (the agentless messages API, into the customer's active conversation): text,
  reply buttons, lists and templates. Genesys records them in its transcript and posts them to our
  outbound webhook, where the ordinary outbound path turns them into WhatsApp messages (a
  `Notification` into a template) — one path, the same tracking, ticks and failure receipts.
- **Straight to WhatsApp** (`xypr.services.whatsapp_sends.queue_whatsapp`, as
  `/transform/outbound/send/template` does): reactions, replies quoting a customer message and uploaded
  media, which Open Messaging cannot carry.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import httpx

from xypr.core.errors import BadRequest, Conflict, ServiceUnavailable
from xypr.core.logging import get_logger
from xypr.runtime import Runtime
from xypr.state.models import Conversation
from xypr.tenants.service import TenantRuntime

__all__ = ["AGENTLESS_PATH", "send_through_genesys", "store_attachment"]

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
    try:
        response = await runtime.genesys.request(tenant.genesys_credentials, "POST", AGENTLESS_PATH, body)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"Genesys Cloud unreachable ({type(exc).__name__}); try again") from exc
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
