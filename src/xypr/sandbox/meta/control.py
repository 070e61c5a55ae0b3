"""The Meta emulator's `/_sandbox` control routes: registry, clock, faults, customers, media and views."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from xypr.sandbox.meta.deps import SandboxDep
from xypr.sandbox.meta.models import (
    ClockRequest,
    CustomerMessageRequest,
    FaultRequest,
    MediaJsonRequest,
    NumberRegistration,
    RawWebhookRequest,
    ResetRequest,
    StatusSequenceRequest,
    TemplateRequest,
)
from xypr.sandbox.meta.state import BusinessNumber, Fault, MetaSandbox, Template
from xypr.sandbox.meta.validation import MEDIA_TYPES, wa_id_of
from xypr.sandbox.meta.webhooks import Customer
from xypr.sandbox.multipart import MultipartError, parse_form_data
from xypr.sandbox.records import select
from xypr.sandbox.served_files import file_response

__all__ = ["router"]

router = APIRouter(prefix="/_sandbox", tags=["meta sandbox"])

_PHONE = re.compile(r"^[\d\s+()\-.]+$")


def _number(sandbox: MetaSandbox, phone_number_id: str) -> BusinessNumber:
    number = sandbox.numbers.get(phone_number_id)
    if number is None:
        raise HTTPException(404, f"phone_number_id {phone_number_id} is not registered")
    return number


def _customer_key(value: str | None) -> str | None:
    """Phone numbers compare by digits (`+1 650…` = `1650…`); BSUIDs as they are."""
    if not value:
        return None
    return wa_id_of(value) if _PHONE.match(value) else value


@router.post("/numbers")
async def register_number(registration: NumberRegistration, sandbox: SandboxDep) -> dict[str, Any]:
    """Register (upsert) a business number; with `verify`, run the webhook verification handshake."""
    fields = registration.model_dump(exclude={"verify"})
    number = sandbox.register_number(BusinessNumber(**fields))
    verification = await sandbox.verify_webhook(number) if registration.verify else None
    return {"phone_number_id": number.phone_number_id, "registered": True, "verification": verification}


@router.get("/numbers")
async def list_numbers(sandbox: SandboxDep) -> list[dict[str, str]]:
    """Registered numbers (without their secrets)."""
    return [
        {
            "phone_number_id": n.phone_number_id,
            "display_phone_number": n.display_phone_number,
            "waba_id": n.waba_id,
            "webhook_url": n.webhook_url,
        }
        for n in sandbox.numbers.values()
    ]


@router.post("/clock")
async def shift_clock(request: ClockRequest, sandbox: SandboxDep) -> dict[str, float]:
    """Set (`offset_seconds`) or advance (`advance_seconds`) the emulator's clock."""
    if request.offset_seconds is not None:
        sandbox.clock_offset = request.offset_seconds
    if request.advance_seconds is not None:
        sandbox.clock_offset += request.advance_seconds
    return {"offset_seconds": sandbox.clock_offset, "now": sandbox.now()}


@router.post("/faults")
async def inject_fault(request: FaultRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """Make the next `count` sends of a number fail with the documented error for `code`."""
    _number(sandbox, request.phone_number_id)
    sandbox.add_fault(request.phone_number_id, Fault(request.code, request.count, request.http_status, request.mode))
    pending = sum(f.remaining for f in sandbox.faults.get(request.phone_number_id, []))
    return {"phone_number_id": request.phone_number_id, "pending_faulted_sends": pending}


@router.post("/media")
async def create_customer_media(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """Store media a customer will send: multipart (`phone_number_id`, `file`) or JSON with base64 bytes."""
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    if content_type.startswith("multipart/"):
        try:
            form = parse_form_data(content_type, raw)
        except MultipartError as exc:
            raise HTTPException(400, str(exc)) from exc
        if "phone_number_id" not in form or "file" not in form:
            raise HTTPException(400, "phone_number_id and file are required")
        file = form["file"]
        phone_number_id = form["phone_number_id"].text
        mime_type = form["type"].text if "type" in form else file.content_type or "application/octet-stream"
        content, filename = file.content, file.filename
    else:
        try:
            body = MediaJsonRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        try:
            content = base64.b64decode(body.data_base64, validate=True)
        except binascii.Error as exc:
            raise HTTPException(400, "data_base64 is not valid base64") from exc
        phone_number_id, mime_type, filename = body.phone_number_id, body.mime_type, body.filename
    _number(sandbox, phone_number_id)
    media = sandbox.store_media(phone_number_id, content, mime_type, filename)
    return {
        "id": media.media_id,
        "mime_type": media.mime_type,
        "sha256": media.sha256_b64,
        "file_size": len(content),
    }


@router.get("/media/{media_id}")
async def media_content(media_id: str, sandbox: SandboxDep) -> Response:
    """The bytes of any media object (customer-sent or uploaded by the business), for the sandbox page.

    Graph's own download needs the access token and a 5-minute signed URL; a page showing both sides of
    the conversation needs neither. Images, audio and video are shown inline; anything else downloads.
    """
    media = sandbox.media.get(media_id)
    if media is None:
        raise HTTPException(404, f"media {media_id} does not exist")
    return file_response(media.content, media.mime_type, media.filename)


@router.post("/customers/{wa_id}/messages")
async def customer_sends(wa_id: str, request: CustomerMessageRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """The customer `wa_id` writes to a business number: a signed webhook like webhook-text.json."""
    number = _number(sandbox, request.phone_number_id)
    content: dict[str, Any]
    if request.type == "text":
        content = {"body": request.text or ""}
    elif request.type in MEDIA_TYPES:
        content = _media_content(sandbox, number, request)
    else:
        content = request.content or {}
    customer = Customer(
        name=request.name,
        wa_id=None if request.hide_phone else _customer_key(wa_id),
        user_id=request.user_id,
        username=request.username,
    )
    record = await sandbox.customer_message(
        number, customer, message_type=request.type, content=content, context_id=request.context_id
    )
    return {"wamid": record.wamid, "webhook_status": record.webhook_status, "attempts": record.attempts}


def _media_content(sandbox: MetaSandbox, number: BusinessNumber, request: CustomerMessageRequest) -> dict[str, Any]:
    media = sandbox.media.get(request.media_id or "")
    if media is None or media.phone_number_id != number.phone_number_id:
        raise HTTPException(404, f"media {request.media_id} does not exist for this number")
    content: dict[str, Any] = {}
    if request.caption is not None and request.type in ("image", "video", "document"):
        content["caption"] = request.caption
    if request.type == "document":
        content["filename"] = request.filename or media.filename or "document"
    content.update({"mime_type": media.mime_type, "sha256": media.sha256_b64, "id": media.media_id})
    if request.type == "audio":
        content["voice"] = request.voice
    if request.type == "sticker":
        content["animated"] = False
    return content


@router.post("/webhooks/raw")
async def post_raw_webhook(request: RawWebhookRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """Sign and post any body (JSON `body`, or exactly the characters of `raw`) to a number's webhook."""
    number = _number(sandbox, request.phone_number_id)
    if request.raw is not None:
        delivery = await sandbox.post_raw(number, request.raw.encode())
    else:
        delivery = await sandbox.post_webhook(number, request.body)
    return delivery.as_dict()


@router.post("/templates")
async def add_template(request: TemplateRequest, sandbox: SandboxDep) -> dict[str, Any]:
    """Add a template to a WABA (listed by `GET /{version}/{waba_id}/message_templates`; approved ones sendable)."""
    template = Template(request.name, request.language, request.category, request.components, status=request.status)
    return sandbox.add_template(request.waba_id, template).as_graph()


@router.get("/templates")
async def list_templates(sandbox: SandboxDep, waba_id: str) -> list[dict[str, Any]]:
    """A WABA's approved templates (as `GET /{waba_id}/message_templates` lists them), without a token."""
    return [template.as_graph() for template in sandbox.templates.get(waba_id, {}).values()]


@router.get("/sent")
async def sent_messages(
    sandbox: SandboxDep, phone_number_id: str | None = None, to: str | None = None
) -> list[dict[str, Any]]:
    """Accepted sends (request body, wamid, time, latest status), oldest first."""
    return select(sandbox.sent, phone_number_id=phone_number_id, recipient=_customer_key(to))


@router.get("/statuses")
async def status_webhooks(
    sandbox: SandboxDep,
    phone_number_id: str | None = None,
    to: str | None = None,
    wamid: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Status webhooks posted (body and delivery result), oldest first."""
    return select(
        sandbox.statuses,
        phone_number_id=phone_number_id,
        recipient=_customer_key(to),
        wamid=wamid,
        status=status,
    )


@router.get("/inbound")
async def inbound_messages(
    sandbox: SandboxDep, phone_number_id: str | None = None, wa_id: str | None = None
) -> list[dict[str, Any]]:
    """Customer messages posted to the business webhooks, oldest first."""
    return select(sandbox.inbound, phone_number_id=phone_number_id, wa_id=_customer_key(wa_id))


@router.get("/read_receipts")
async def read_receipts(sandbox: SandboxDep, phone_number_id: str | None = None) -> list[dict[str, Any]]:
    """Mark-as-read / typing indicator requests received, oldest first."""
    return select(sandbox.read_receipts, phone_number_id=phone_number_id)


@router.post("/statuses/sequence")
async def set_status_sequence(request: StatusSequenceRequest, sandbox: SandboxDep) -> dict[str, list[str]]:
    """Choose the status webhooks that follow each accepted send (e.g. only `sent`, for load tests)."""
    sandbox.status_sequence = tuple(request.sequence)
    return {"sequence": list(sandbox.status_sequence)}


@router.post("/reset")
async def reset(sandbox: SandboxDep, request: ResetRequest | None = None) -> dict[str, bool]:
    """Forget traffic, faults, media, windows and clock shift (`registry`: numbers and templates too)."""
    sandbox.reset(registry=bool(request and request.registry))
    return {"reset": True}
