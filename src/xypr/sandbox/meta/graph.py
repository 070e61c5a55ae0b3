"""The emulated Graph API routes: messages, media, media download, phone number and templates."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from fastapi import APIRouter, Request, Response

from xypr.sandbox.meta.deps import SandboxDep, TokenDep
from xypr.sandbox.meta.errors import (
    GraphError,
    documented_error,
    invalid_parameter,
    invalid_token,
    unknown_object,
)
from xypr.sandbox.meta.state import BusinessNumber, MediaObject, MetaSandbox
from xypr.sandbox.meta.validation import MarkRead, validate_messages_body
from xypr.sandbox.multipart import MultipartError, parse_form_data

__all__ = ["MEDIA_LIMITS", "router"]

_MB = 1024 * 1024
_DOCUMENT_TYPES = (
    "text/plain",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)
# Supported upload types and their size limits (contracts README, "Media").
MEDIA_LIMITS: dict[str, int] = {
    "image/jpeg": 5 * _MB,
    "image/png": 5 * _MB,
    **dict.fromkeys(("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"), 16 * _MB),
    "video/mp4": 16 * _MB,
    "video/3gpp": 16 * _MB,
    "image/webp": 500 * 1024,
    **dict.fromkeys(_DOCUMENT_TYPES, 100 * _MB),
}
_VERSION = re.compile(r"^v\d+\.\d+$")

router = APIRouter()


def check_version(request: Request, version: str) -> None:
    """Refuse malformed versions, and versions outside the app's accepted list when it has one."""
    if not _VERSION.match(version):
        raise GraphError(2500, f"Unknown path components: /{version}", http_status=400)
    accepted: frozenset[str] | None = request.app.state.api_versions
    if accepted is not None and version not in accepted:
        raise GraphError(
            2635,
            f"(#2635) You are calling a deprecated version of the Graph API. Use {max(accepted)}.",
        )


def authorized_number(sandbox: MetaSandbox, token: str | None, phone_number_id: str, method: str) -> BusinessNumber:
    """The number if the token is its access token; 190 for a bad token, 100/33 for an unknown number."""
    number = sandbox.numbers.get(phone_number_id)
    if number is not None and token is not None and hmac.compare_digest(number.access_token, token):
        return number
    if number is not None or sandbox.number_for_token(token) is None:
        raise invalid_token()
    raise unknown_object(phone_number_id, method)


def _owned_media(sandbox: MetaSandbox, token: str | None, media_id: str, method: str) -> MediaObject:
    media = sandbox.media.get(media_id)
    owner = sandbox.numbers.get(media.phone_number_id) if media else None
    if media is not None and owner is not None and token and hmac.compare_digest(owner.access_token, token):
        return media
    if sandbox.number_for_token(token) is None:
        raise invalid_token()
    raise unknown_object(media_id, method)


@router.post("/{version}/{phone_number_id}/messages")
async def send_message(
    version: str, phone_number_id: str, request: Request, sandbox: SandboxDep, token: TokenDep
) -> dict[str, Any]:
    """Send a message, or mark one as read (with typing indicator)."""
    check_version(request, version)
    number = authorized_number(sandbox, token, phone_number_id, "post")
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise invalid_parameter("The request body is not valid JSON.") from exc
    request_kind = validate_messages_body(body)
    if isinstance(request_kind, MarkRead):
        sandbox.record_read(number, request_kind)
        return {"success": True}
    fault = sandbox.take_fault(phone_number_id)
    if fault is not None and fault.mode == "response":
        raise documented_error(fault.code, http_status=fault.http_status)
    return sandbox.accept_send(number, request_kind, body, fault)


@router.post("/{version}/{phone_number_id}/media")
async def upload_media(
    version: str, phone_number_id: str, request: Request, sandbox: SandboxDep, token: TokenDep
) -> dict[str, str]:
    """Upload media (multipart `messaging_product`, `file`, `type`) → `{"id"}`."""
    check_version(request, version)
    number = authorized_number(sandbox, token, phone_number_id, "post")
    try:
        form = parse_form_data(request.headers.get("content-type", ""), await request.body())
    except MultipartError as exc:
        raise invalid_parameter(f"The request must be multipart/form-data: {exc}.") from exc
    product = form.get("messaging_product")
    if product is None or product.text != "whatsapp":
        raise invalid_parameter("The parameter messaging_product is required and must be 'whatsapp'.")
    file = form.get("file")
    if file is None or file.filename is None:
        raise invalid_parameter("The parameter file is required.")
    declared = form.get("type")
    mime_type = (declared.text if declared else file.content_type or "").split(";")[0].strip().lower()
    limit = MEDIA_LIMITS.get(mime_type)
    if limit is None:
        raise documented_error(
            131053, details=f"Param file must be a file with one of the supported types; got '{mime_type}'."
        )
    if not file.content or len(file.content) > limit:
        raise documented_error(
            131053,
            details=f"File of {len(file.content)} bytes is outside the {limit}-byte limit for {mime_type}.",
        )
    media = sandbox.store_media(number.phone_number_id, file.content, mime_type, file.filename)
    return {"id": media.media_id}


@router.get("/{version}/{waba_id}/message_templates")
async def list_templates(
    version: str, waba_id: str, request: Request, sandbox: SandboxDep, token: TokenDep
) -> dict[str, Any]:
    """The WABA's approved templates."""
    check_version(request, version)
    if sandbox.number_for_token(token) is None:
        raise invalid_token()
    if not any(n.waba_id == waba_id and n.access_token == token for n in sandbox.numbers.values()):
        raise unknown_object(waba_id, "get")
    data = [t.as_graph() for t in sandbox.templates.get(waba_id, {}).values()]
    return {"data": data, "paging": {"cursors": {"before": "MAZDZD", "after": "MjQZD"}}}


def _waba_of_token(sandbox: MetaSandbox, token: str | None, waba_id: str, method: str) -> str:
    """The WABA if the token is the access token of one of its numbers; 190 / 100 otherwise."""
    if sandbox.number_for_token(token) is None:
        raise invalid_token()
    if not any(
        n.waba_id == waba_id and token and hmac.compare_digest(n.access_token, token) for n in sandbox.numbers.values()
    ):
        raise unknown_object(waba_id, method)
    return waba_id


@router.post("/{version}/{waba_id}/subscribed_apps")
async def subscribe_app(
    version: str, waba_id: str, request: Request, sandbox: SandboxDep, token: TokenDep
) -> dict[str, bool]:
    """Subscribe the app to the WABA's webhooks → `{"success": true}` (idempotent)."""
    check_version(request, version)
    sandbox.subscribed_wabas.add(_waba_of_token(sandbox, token, waba_id, "post"))
    return {"success": True}


@router.get("/{version}/{waba_id}/subscribed_apps")
async def list_subscribed_apps(
    version: str, waba_id: str, request: Request, sandbox: SandboxDep, token: TokenDep
) -> dict[str, Any]:
    """The apps subscribed to the WABA (ours, once subscribed)."""
    check_version(request, version)
    _waba_of_token(sandbox, token, waba_id, "get")
    if waba_id not in sandbox.subscribed_wabas:
        return {"data": []}
    app = {"id": "100000000000099", "link": "https://www.facebook.com/games/?app_id=100000000000099", "name": "Xypr"}
    return {"data": [{"whatsapp_business_api_data": app}]}


@router.get("/{version}/{object_id}")
async def get_object(
    version: str, object_id: str, request: Request, sandbox: SandboxDep, token: TokenDep
) -> dict[str, Any]:
    """A phone number's details, or a media object's short-lived URL (media-get-url-response.json)."""
    check_version(request, version)
    if object_id in sandbox.numbers:
        number = authorized_number(sandbox, token, object_id, "get")
        return {
            "verified_name": number.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": number.display_phone_number,
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": number.phone_number_id,
        }
    media = _owned_media(sandbox, token, object_id, "get")
    wanted = request.query_params.get("phone_number_id")
    if wanted and wanted != media.phone_number_id:
        raise unknown_object(object_id, "get")
    return {
        "messaging_product": "whatsapp",
        "url": sandbox.media_url(media),
        "mime_type": media.mime_type,
        "sha256": media.sha256_hex,
        "file_size": str(len(media.content)),
        "id": media.media_id,
    }


@router.delete("/{version}/{media_id}")
async def delete_media(
    version: str, media_id: str, request: Request, sandbox: SandboxDep, token: TokenDep
) -> dict[str, bool]:
    """Delete uploaded media (media-delete-response.json)."""
    check_version(request, version)
    media = _owned_media(sandbox, token, media_id, "delete")
    sandbox.media.pop(media.media_id, None)
    return {"success": True}


media_router = APIRouter()


@media_router.get("/_media/{media_id}")
async def download_media(media_id: str, request: Request, sandbox: SandboxDep, token: TokenDep) -> Response:
    """The bytes behind a media URL: needs the owner's bearer token and an unexpired URL."""
    media = sandbox.media.get(media_id)
    query = request.query_params
    if media is None or not sandbox.media_url_valid(media_id, query.get("expires", ""), query.get("hash", "")):
        return Response(status_code=404)
    owner = sandbox.numbers.get(media.phone_number_id)
    if owner is None or not token or not hmac.compare_digest(owner.access_token, token):
        error = invalid_token()
        return Response(json.dumps(error.body()), status_code=401, media_type="application/json")
    safe_name = re.sub(r"[^\w.\- ]", "_", media.filename or "")
    headers = {"Content-Disposition": f'attachment; filename="{safe_name}"'} if safe_name else None
    return Response(media.content, media_type=media.mime_type, headers=headers)
