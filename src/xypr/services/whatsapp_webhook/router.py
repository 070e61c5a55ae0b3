"""Meta webhook endpoint: verification handshake, signature, tenant routing, durable publish before 200."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from xypr.backends.broker.base import BrokerUnavailable, OutgoingMessage
from xypr.core.errors import BackendUnavailable, BadRequest, Forbidden, NotFound, Unauthorized
from xypr.core.logging import get_logger
from xypr.core.metrics import WEBHOOKS, WHATSAPP_UNKNOWN_FIELDS
from xypr.events import InboundWhatsAppEvent
from xypr.monitoring.webhooks import note_webhook
from xypr.services.deps import (
    MAX_JSON_DEPTH,
    RuntimeDep,
    body_too_deep,
    correlation_id,
    limit_webhooks_of_tenant,
    read_body,
    runtime_of,
)
from xypr.services.plain_route import PlainPost
from xypr.services.webhook_schemas import WHATSAPP_VERIFY, WHATSAPP_WEBHOOK
from xypr.tenants.parking import hold_if_suspended
from xypr.tenants.service import TenantRuntime
from xypr.topology import INBOUND_WHATSAPP
from xypr.whatsapp import signature
from xypr.whatsapp.models import WebhookPayload, WebhookValue, customer_of

__all__ = ["plain_routes", "router"]

log = get_logger(__name__)

# The keys of a `messages` change value this version understands.
_VALUE_FIELDS = frozenset({"messaging_product", "metadata", "contacts", "messages", "statuses", "errors"})

# Distinct phone numbers (or WABAs) looked up to authenticate one body; one WABA has only a few numbers.
_MAX_ROUTING_IDS = 50

router = APIRouter(tags=["webhooks"])


@router.get(
    "/webhook/whatsapp", response_class=PlainTextResponse, summary="Meta verification handshake", **WHATSAPP_VERIFY
)
async def verify_subscription(request: Request, runtime: RuntimeDep) -> Response:
    """Answer `hub.challenge` when `hub.verify_token` is the verify token of one of our tenants."""
    params = request.query_params
    challenge = params.get("hub.challenge", "")
    if params.get("hub.mode") != "subscribe" or not challenge:
        WEBHOOKS.labels("whatsapp", "bad_verification").inc()
        raise Forbidden("expected hub.mode=subscribe with hub.challenge")
    if not await runtime.tenants.verify_token_matches(params.get("hub.verify_token", "")):
        WEBHOOKS.labels("whatsapp", "bad_verification").inc()
        raise Forbidden("verify token does not match")
    WEBHOOKS.labels("whatsapp", "verified").inc()
    return PlainTextResponse(challenge)


# Documented here; served by `plain_routes` (ahead of FastAPI's routing, services/plain_route.py).
@router.post("/webhook/whatsapp", summary="Meta webhook (messages and statuses)", **WHATSAPP_WEBHOOK)
async def receive(request: Request) -> JSONResponse:
    """Verify and publish every message, status and error of the POST; 200 only once all are durable.

    Authentication comes first: the signature header must be there and well formed before the body is
    read; the body is parsed only far enough to find the tenants whose app secret signs it, and a body
    that names none cannot be authenticated (401). Only a verified body is validated in full.
    """
    runtime = runtime_of(request)
    cid = correlation_id(request)
    header = request.headers.get("x-hub-signature-256")
    if not header:
        WEBHOOKS.labels("whatsapp", "bad_signature").inc()
        raise Unauthorized("missing X-Hub-Signature-256")
    if not signature.well_formed(header):
        WEBHOOKS.labels("whatsapp", "bad_signature").inc()
        raise Forbidden("X-Hub-Signature-256 is not sha256=<64 hex digits>")
    raw = await read_body(request, limit=runtime.settings.max_webhook_body_bytes)
    try:
        document: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    numbers, wabas = _routing_ids(document)
    if not numbers and not wabas:
        WEBHOOKS.labels("whatsapp", "bad_signature").inc()
        raise Unauthorized("cannot authenticate: the body is not a WhatsApp webhook naming a phone_number_id")

    tenants: dict[str, TenantRuntime] = {}  # by phone number id
    unknown: set[str] = set()
    for number in numbers:
        tenant = await runtime.tenants.by_phone_number_id(number)
        if tenant is None:
            unknown.add(number)
        else:
            tenants[number] = tenant
    # Changes without a number (account updates…) are authenticated by their WhatsApp Business Account.
    by_waba = [tenant for waba in wabas if (tenant := await runtime.tenants.by_waba_id(waba)) is not None]
    if unknown:
        WEBHOOKS.labels("whatsapp", "unknown_tenant").inc()
        log.warning("webhook.unknown_phone_number", phone_number_ids=sorted(unknown), correlation_id=cid)
    if not tenants and not by_waba:
        raise NotFound("no tenant owns the phone_number_id(s) of this webhook")
    trusted = {number for number, tenant in tenants.items() if signature.verify(tenant.wa_app_secret, raw, header)}
    if not trusted and not any(signature.verify(tenant.wa_app_secret, raw, header) for tenant in by_waba):
        WEBHOOKS.labels("whatsapp", "bad_signature").inc()
        log.warning("webhook.bad_signature", source="whatsapp", correlation_id=cid)
        raise Forbidden("X-Hub-Signature-256 does not match")
    untrusted = sorted(set(tenants) - trusted)
    if untrusted:  # another tenant's numbers in a body signed for this one: not theirs to speak for
        log.warning("webhook.untrusted_numbers", phone_number_ids=untrusted, correlation_id=cid)

    # Authenticated: now the whole body is checked.
    if body_too_deep(raw, document):
        WEBHOOKS.labels("whatsapp", "malformed").inc()
        raise BadRequest(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        payload = WebhookPayload.model_validate(document)
    except ValidationError as exc:
        WEBHOOKS.labels("whatsapp", "malformed").inc()
        raise BadRequest(f"not a WhatsApp webhook body: {exc.errors()[0]['msg']}") from exc
    if payload.object != "whatsapp_business_account":
        WEBHOOKS.labels("whatsapp", "malformed").inc()
        raise BadRequest(f"unexpected object {payload.object!r}")
    signed_for = {tenant.id: tenant for tenant in [*(tenants[n] for n in trusted), *by_waba]}
    for tenant_id in signed_for:
        await limit_webhooks_of_tenant(runtime, tenant_id)
    await note_webhook(runtime.cache, signed_for, "whatsapp")

    values: list[tuple[str, WebhookValue]] = []
    for entry in payload.entry:
        for change in entry.changes:
            if change.field != "messages":
                # Other fields (account updates, template reviews…) are not ours to bridge: said, not dropped unseen.
                log.info("webhook.field_not_bridged", field=change.field[:64], waba_id=entry.id, correlation_id=cid)
                continue
            try:
                values.append((entry.id, WebhookValue.model_validate(change.value)))
            except ValidationError as exc:
                WEBHOOKS.labels("whatsapp", "malformed").inc()
                raise BadRequest(f"change value without metadata.phone_number_id: {exc.errors()[0]['msg']}") from exc
            unknown_fields = sorted(set(change.value) - _VALUE_FIELDS)
            if unknown_fields:  # Meta adds fields over time: noted, never a reason to refuse the webhook
                WHATSAPP_UNKNOWN_FIELDS.labels("value").inc()
                log.info("webhook.unknown_fields", source="whatsapp", fields=unknown_fields[:20], correlation_id=cid)

    now = time.time()
    messages: list[OutgoingMessage] = []
    parked = 0
    for waba_id, value in values:
        tenant = tenants.get(value.metadata.phone_number_id)
        if tenant is None or value.metadata.phone_number_id not in trusted:
            # Not this body's signer's number (logged above as unknown or untrusted): theirs to send, not ours.
            log.warning("webhook.value_skipped", phone_number_id=value.metadata.phone_number_id, correlation_id=cid)
            continue
        events = _events(tenant, waba_id, value, accepted_at=now, cid=cid)
        # A suspended tenant's events are parked durably instead; reactivation republishes them in order.
        publish_now = await hold_if_suspended(runtime.database, INBOUND_WHATSAPP, tenant, events)
        parked += len(events) - len(publish_now)
        messages.extend(publish_now)
    try:
        await runtime.broker.publish(INBOUND_WHATSAPP, messages)
    except BrokerUnavailable as exc:
        WEBHOOKS.labels("whatsapp", "unavailable").inc()
        log.error("webhook.broker_unavailable", source="whatsapp", error=str(exc), correlation_id=cid)
        raise BackendUnavailable("cannot store the event right now; retry later") from exc
    WEBHOOKS.labels("whatsapp", "parked" if parked and not messages else "accepted" if messages else "empty").inc()
    log.info("webhook.accepted", source="whatsapp", events=len(messages), parked=parked, correlation_id=cid)
    answer: dict[str, Any] = {"status": "accepted", "events": len(messages) + parked}
    if parked:
        answer["parked"] = parked
    return JSONResponse(answer, headers={"X-Request-Id": cid})


plain_routes = [PlainPost("/webhook/whatsapp", receive)]


def _routing_ids(document: Any) -> tuple[list[str], list[str]]:
    """The phone number ids a body names (and the WABA ids of entries naming none), read defensively:
    anything that is not the webhook's shape names nothing, and nothing raises. At most
    `_MAX_ROUTING_IDS` of each: an unauthenticated body must not buy many lookups."""
    numbers: dict[str, None] = {}
    wabas: dict[str, None] = {}
    entries = document.get("entry") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        changes = entry.get("changes")
        found = False
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if isinstance(number, str) and number:
                numbers[number] = None
                found = True
        waba = entry.get("id")
        if not found and isinstance(waba, str) and waba:
            wabas[waba] = None
    return list(numbers)[:_MAX_ROUTING_IDS], list(wabas)[:_MAX_ROUTING_IDS]


def _events(
    tenant: TenantRuntime, waba_id: str, value: WebhookValue, *, accepted_at: float, cid: str
) -> list[OutgoingMessage]:
    """One broker message per message, status and error of a change value, keyed by customer."""
    by_customer: dict[str, dict[str, Any]] = {}
    for contact in value.contacts:
        for key in (contact.get("wa_id"), contact.get("user_id")):
            if key:
                by_customer[str(key)] = contact
    fallback = value.contacts[0] if len(value.contacts) == 1 else None
    common = {
        "tenant_id": tenant.id,
        "waba_id": waba_id,
        "phone_number_id": value.metadata.phone_number_id,
        "accepted_at": accepted_at,
        "correlation_id": cid,
    }
    out: list[OutgoingMessage] = []
    for item in value.messages:
        # An identity change may come without `from`: it still goes in its customer's order.
        customer = customer_of(item) or "_unknown"
        event = InboundWhatsAppEvent(kind="message", contact=by_customer.get(customer, fallback), item=item, **common)
        out.append(event.to_outgoing(customer=customer))
    for item in value.statuses:
        customer = str(item.get("recipient_id") or item.get("recipient_user_id") or "_unknown")
        out.append(InboundWhatsAppEvent(kind="status", item=item, **common).to_outgoing(customer=customer))
    for item in value.errors:
        out.append(InboundWhatsAppEvent(kind="error", item=item, **common).to_outgoing(customer="_errors"))
    return out
