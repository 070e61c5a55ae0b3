"""Genesys outbound webhook: base64 signature, tenant by integration id, durable publish before 200."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from xypr.backends.broker.base import BrokerUnavailable
from xypr.core.errors import BackendUnavailable, BadRequest, Forbidden, NotFound, Unauthorized
from xypr.core.logging import get_logger
from xypr.core.metrics import WEBHOOKS
from xypr.events import OutboundGenesysEvent
from xypr.genesys import signature
from xypr.genesys.models import GenesysOutbound
from xypr.monitoring.webhooks import note_webhook
from xypr.services.deps import (
    MAX_JSON_DEPTH,
    body_too_deep,
    correlation_id,
    limit_webhooks_of_tenant,
    read_body,
    runtime_of,
)
from xypr.services.plain_route import PlainPost
from xypr.services.webhook_schemas import GENESYS_WEBHOOK
from xypr.tenants.parking import hold_if_suspended
from xypr.topology import OUTBOUND_GENESYS

__all__ = ["plain_routes", "router"]

log = get_logger(__name__)
router = APIRouter(tags=["webhooks"])


# Documented here; served by `plain_routes` (ahead of FastAPI's routing, services/plain_route.py).
@router.post("/webhook/genesys", summary="Genesys Open Messaging outbound webhook", **GENESYS_WEBHOOK)
async def receive(request: Request) -> JSONResponse:
    """Verify and publish one agent message, event or receipt; 200 only once it is durable.

    Authentication first: the signature header before the body, the body only as far as `channel.id`
    (anything else is 401) before the signature is checked.

    WhatsApp-side problems never turn into a non-2xx here (that would break the Genesys chat):
    they are reported later as a `Failed` receipt.
    """
    runtime = runtime_of(request)
    cid = correlation_id(request)
    header = request.headers.get("x-hub-signature-256")
    if not header:
        WEBHOOKS.labels("genesys", "bad_signature").inc()
        raise Unauthorized("missing X-Hub-Signature-256")
    if not signature.well_formed(header):
        WEBHOOKS.labels("genesys", "bad_signature").inc()
        raise Forbidden("X-Hub-Signature-256 is not sha256=<base64 HMAC-SHA256>")
    raw = await read_body(request, limit=runtime.settings.max_webhook_body_bytes)
    # Only as far as the integration id, whose tenant's secret signs the body; nothing else is trusted yet.
    try:
        document: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    channel = document.get("channel") if isinstance(document, dict) else None
    integration_id = channel.get("id") if isinstance(channel, dict) else None
    if not isinstance(integration_id, str) or not integration_id:
        WEBHOOKS.labels("genesys", "bad_signature").inc()
        raise Unauthorized("cannot authenticate: the body names no integration (channel.id)")
    tenant = await runtime.tenants.by_integration_id(integration_id)
    if tenant is None:
        WEBHOOKS.labels("genesys", "unknown_tenant").inc()
        log.warning("webhook.unknown_integration", integration_id=integration_id[:100], correlation_id=cid)
        raise NotFound("no tenant owns this integration id")
    if not signature.verify(tenant.genesys_webhook_secret, raw, header):
        WEBHOOKS.labels("genesys", "bad_signature").inc()
        log.warning("webhook.bad_signature", source="genesys", tenant_id=tenant.id, correlation_id=cid)
        raise Forbidden("X-Hub-Signature-256 does not match")
    if body_too_deep(raw, document):
        WEBHOOKS.labels("genesys", "malformed").inc()
        raise BadRequest(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    await note_webhook(runtime.cache, [tenant.id], "genesys")
    try:
        message = GenesysOutbound.model_validate(document)
    except ValidationError as exc:
        WEBHOOKS.labels("genesys", "malformed").inc()
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadRequest(f"{where}: {first['msg']}", field=where) from exc
    await limit_webhooks_of_tenant(runtime, tenant.id)
    event = OutboundGenesysEvent(tenant_id=tenant.id, body=document, accepted_at=time.time(), correlation_id=cid)
    outgoing = event.to_outgoing(customer=message.channel.to.id)
    # A suspended tenant's events are parked durably instead; reactivation republishes them in order.
    publish_now = await hold_if_suspended(runtime.database, OUTBOUND_GENESYS, tenant, [outgoing])
    if not publish_now:
        WEBHOOKS.labels("genesys", "parked").inc()
        return JSONResponse({"status": "accepted", "parked": 1}, headers={"X-Request-Id": cid})
    try:
        await runtime.broker.publish(OUTBOUND_GENESYS, publish_now)
    except BrokerUnavailable as exc:
        WEBHOOKS.labels("genesys", "unavailable").inc()
        log.error("webhook.broker_unavailable", source="genesys", error=str(exc), correlation_id=cid)
        raise BackendUnavailable("cannot store the event right now; retry later") from exc
    WEBHOOKS.labels("genesys", "accepted").inc()
    log.info("webhook.accepted", source="genesys", events=1, correlation_id=cid)
    return JSONResponse({"status": "accepted"}, headers={"X-Request-Id": cid})


plain_routes = [PlainPost("/webhook/genesys", receive)]
