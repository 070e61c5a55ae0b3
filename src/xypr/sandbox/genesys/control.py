"""The Genesys emulator's `/_sandbox` control routes: registry, tokens, faults, agent simulation and views."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException

from xypr.sandbox.genesys.deps import SandboxDep
from xypr.sandbox.genesys.models import (
    AgentMessageRequest,
    AgentTypingRequest,
    DisconnectRequest,
    FaultRequest,
    IntegrationRegistration,
    LatencyRequest,
    RawWebhookRequest,
    ResetRequest,
    TokenTtlRequest,
)
from xypr.sandbox.genesys.state import Fault, GenesysSandbox, Integration, SentRecord
from xypr.sandbox.genesys.webhooks import outbound_message, outbound_typing
from xypr.sandbox.records import select

__all__ = ["router"]

router = APIRouter(prefix="/_sandbox", tags=["genesys sandbox"])


def _integration(sandbox: GenesysSandbox, integration_id: str) -> Integration:
    integration = sandbox.integrations.get(integration_id)
    if integration is None:
        raise HTTPException(404, f"integration {integration_id} is not registered")
    return integration


def _delivery(record: SentRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "webhook_status": record.webhook_status,
        "attempts": record.attempts,
        "error": record.error,
    }


@router.post("/integrations")
async def register_integration(registration: IntegrationRegistration, sandbox: SandboxDep) -> dict[str, Any]:
    """Register (upsert) an integration with its OAuth client and outbound webhook."""
    fields = registration.model_dump()
    fields["org_id"] = registration.org_id or str(uuid.uuid5(uuid.NAMESPACE_URL, registration.client_id))
    integration = sandbox.register_integration(Integration(**fields))
    return {"integration_id": integration.integration_id, "org_id": integration.org_id, "registered": True}


@router.get("/integrations")
async def list_integrations(sandbox: SandboxDep) -> list[dict[str, str]]:
    """Registered integrations (without their secrets)."""
    return [
        {"integration_id": i.integration_id, "name": i.name, "org_id": i.org_id, "webhook_url": i.webhook_url}
        for i in sandbox.integrations.values()
    ]


@router.post("/tokens/expire")
async def expire_tokens(sandbox: SandboxDep) -> dict[str, int]:
    """Expire every issued token: the next API call with one answers 401."""
    return {"expired": sandbox.expire_tokens()}


@router.post("/tokens/ttl")
async def set_token_ttl(request: TokenTtlRequest, sandbox: SandboxDep) -> dict[str, int]:
    """Lifetime (seconds) of tokens issued from now on."""
    sandbox.token_ttl = request.seconds
    return {"seconds": sandbox.token_ttl}


@router.post("/latency")
async def set_latency(request: LatencyRequest, sandbox: SandboxDep) -> dict[str, float]:
    """Answer Open Messaging calls `seconds` after accepting them (0: at once)."""
    sandbox.answer_delay_seconds = request.seconds
    return {"seconds": sandbox.answer_delay_seconds}


@router.post("/faults")
async def inject_fault(request: FaultRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """The next `count` Open Messaging API calls (or every call for `seconds`) answer `status`."""
    sandbox.faults.append(
        Fault(request.status, request.count, request.integration_id, request.retry_after, seconds=request.seconds)
    )
    return {"pending_faulted_calls": sum(f.remaining for f in sandbox.faults)}


@router.delete("/faults")
async def clear_faults(sandbox: SandboxDep) -> dict[str, int]:
    """End every fault at once (an outage is over): the next API call is answered normally."""
    cleared = len(sandbox.faults)
    sandbox.faults.clear()
    return {"cleared": cleared}


@router.post("/conversations/disconnect")
async def disconnect(request: DisconnectRequest, sandbox: SandboxDep) -> dict[str, str | None]:
    """End a customer's conversation; the next message gets a new conversation id."""
    return {"ended_conversation_id": sandbox.disconnect(request.integration_id, request.customer_id)}


@router.post("/integrations/{integration_id}/agent/messages")
async def agent_sends(integration_id: str, request: AgentMessageRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """An agent replies: a signed outbound webhook like captured-openmessaging-outbound-text.json."""
    integration = _integration(sandbox, integration_id)
    body = outbound_message(
        integration_id=integration_id,
        nickname=request.nickname or integration.name,
        to_id=request.to,
        to_id_type=request.to_id_type,
        message_type=request.type,
        text=request.text,
        content=request.content,
        originating_entity=request.originating_entity,
    )
    return _delivery(await sandbox.send_outbound(integration, body))


@router.post("/integrations/{integration_id}/agent/typing")
async def agent_types(integration_id: str, request: AgentTypingRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """The agent is typing: a signed outbound Event webhook like outbound-event-typing.json."""
    integration = _integration(sandbox, integration_id)
    body = outbound_typing(
        integration_id=integration_id,
        nickname=integration.name,
        to_id=request.to,
        to_id_type=None,
        duration_ms=request.duration,
    )
    return _delivery(await sandbox.send_outbound(integration, body))


@router.post("/integrations/{integration_id}/webhooks/raw")
async def post_raw_webhook(integration_id: str, request: RawWebhookRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """Sign and post any body (JSON `body`, or exactly the characters of `raw`) to the integration's webhook."""
    integration = _integration(sandbox, integration_id)
    raw = request.raw.encode() if request.raw is not None else None
    return _delivery(await sandbox.send_outbound(integration, request.body, raw=raw))


@router.get("/received")
async def received(
    sandbox: SandboxDep, integration_id: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    """What Xypr posted (kind: message, receipt, event, structured), with the answer given, oldest first."""
    rows = select(sandbox.received, integration_id=integration_id, kind=kind)
    # Also under Genesys' own spelling, as the inbound message response carries it.
    return [{**row, "conversationId": row["conversation_id"]} for row in rows]


@router.get("/sent")
async def sent(sandbox: SandboxDep, integration_id: str | None = None, to: str | None = None) -> list[dict[str, Any]]:
    """Outbound webhooks posted to Xypr and their delivery results, oldest first."""
    return select(sandbox.sent, integration_id=integration_id, to=to)


@router.post("/reset")
async def reset(sandbox: SandboxDep, request: ResetRequest | None = None) -> dict[str, bool]:
    """Forget traffic, faults and conversations (`registry`: integrations and tokens too)."""
    sandbox.reset(registry=bool(request and request.registry))
    return {"reset": True}
