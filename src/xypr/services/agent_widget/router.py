"""`/widget`: the Genesys Interaction Widget page and the role-checked endpoints it calls.

The page itself is public (it holds no data): it signs the agent in through Genesys in the frame and
keeps the exchanged Xypr token in memory. Everything under `/widget/api/` needs that token, and only
shows a conversation of the caller's own tenant — anything else is "Conversation not found".
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from xypr.auth.principal import Principal, Role, require_roles
from xypr.backends.db.base import as_utc, utcnow
from xypr.core.errors import BadRequest, NotFound, XyprError
from xypr.core.logging import get_logger
from xypr.events import MediaUpload
from xypr.runtime import Runtime
from xypr.services.agent_widget.catalog import WabaTemplate, fetch_templates, render
from xypr.services.agent_widget.history import Bubble, MediaView, bubbles
from xypr.services.agent_widget.i18n import labels_for, language_of
from xypr.services.agent_widget.page import (
    environment,
    genesys_region_of,
    login_host,
    page_policy,
    script_json,
)
from xypr.services.agent_widget.sends import queue_whatsapp, send_through_genesys, store_attachment
from xypr.services.deps import RuntimeDep, correlation_id
from xypr.services.openapi import error_responses, json_error_responses
from xypr.state.models import Conversation, Media, Message
from xypr.state.service import CUSTOMER_SERVICE_WINDOW, window_open
from xypr.tenants.service import TenantRuntime
from xypr.whatsapp.mediatypes import media_kind

__all__ = ["router"]

log = get_logger(__name__)

router = APIRouter(tags=["agent widget"])
ConversationIdPath = Annotated[str, Path(alias="conversationId")]
environment()

_READERS = require_roles(Role.TENANT_ADMIN, Role.SUPERVISOR, Role.AGENT)
# Supervisors watch; they never speak to the customer from the widget.
_SENDERS = require_roles(Role.TENANT_ADMIN, Role.AGENT)
Reader = Annotated[Principal, Depends(_READERS)]
Sender = Annotated[Principal, Depends(_SENDERS)]
Lang = Annotated[str, Query(max_length=20, description="Genesys gcLangTag, e.g. en-us, es")]

HISTORY_LIMIT: Final = 200
MEDIA_URL_SECONDS: Final = 3600
# Template header media the agent uploads must stay fetchable while Meta sends the template.
HEADER_MEDIA_URL_SECONDS: Final = 24 * 3600
HEARTBEAT_SECONDS: Final = 15.0
REACTIONS: Final = ("👍", "❤️", "😂", "😮", "😢", "🙏")
_NO_STORE: Final = {"Cache-Control": "no-store"}


# -- the page ------------------------------------------------------------------------------------------


@router.get("/widget", response_class=HTMLResponse, include_in_schema=False)
async def widget_page(
    runtime: RuntimeDep,
    gc_conversation_id: Annotated[str, Query(alias="gcConversationId", max_length=64)] = "",
    gc_host_origin: Annotated[str, Query(alias="gcHostOrigin", max_length=300)] = "",
    gc_target_env: Annotated[str, Query(alias="gcTargetEnv", max_length=40)] = "",
    lang_tag: Annotated[str, Query(alias="langTag", max_length=20)] = "en-us",
) -> HTMLResponse:
    """The widget shell: signs the agent in, then loads the conversation (no data in this page)."""
    settings = runtime.settings
    region = genesys_region_of(gc_host_origin, gc_target_env)
    config = {
        "conversationId": gc_conversation_id,
        "hostOrigin": gc_host_origin,
        "targetEnv": gc_target_env,
        "lang": language_of(lang_tag),
        "region": region,
        "loginUrl": login_host(settings, region),
        "clientId": settings.widget_client_id or settings.genesys_login_client_id,
        "redirectUri": settings.public_url.rstrip("/") + "/widget",
        "labels": labels_for(lang_tag),
    }
    html = (
        environment()
        .get_template("page.html")
        .render(labels=labels_for(lang_tag), lang=language_of(lang_tag), config=script_json(config))
    )
    headers = {"Content-Security-Policy": page_policy(settings), **_NO_STORE}
    return HTMLResponse(html, headers=headers)


@router.get("/widget/signed-in", response_class=HTMLResponse, include_in_schema=False)
async def signed_in(runtime: RuntimeDep) -> HTMLResponse:
    """Genesys's redirect target: hands the token in the fragment to the widget (same origin only)."""
    policy = page_policy(runtime.settings).replace("frame-ancestors", "frame-ancestors 'self'", 1)
    return HTMLResponse(_render("signed_in.html"), headers={"Content-Security-Policy": policy, **_NO_STORE})


# -- the conversation ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _View:
    """What one render of the conversation needs."""

    conversation: Conversation
    bubbles: list[Bubble]
    first_contact: datetime | None
    last_contact: datetime | None


async def _conversation(runtime: Runtime, principal: Principal, conversation_id: ConversationIdPath) -> Conversation:
    """The caller's tenant's conversation, by Genesys's id (or ours); anything else is not found."""
    if principal.tenant_id is None:
        raise NotFound("Conversation not found")
    async with runtime.database.session() as session:
        conversation = await session.scalar(
            select(Conversation)
            .where(
                Conversation.tenant_id == principal.tenant_id,
                or_(Conversation.genesys_conversation_id == conversation_id, Conversation.id == conversation_id),
            )
            .limit(1)
        )
    if conversation is None:
        raise NotFound("Conversation not found")
    return conversation


async def _tenant(runtime: Runtime, conversation: Conversation) -> TenantRuntime:
    tenant = await runtime.tenants.by_id(conversation.tenant_id)
    if tenant is None:
        raise NotFound("Conversation not found")
    return tenant


async def _view(runtime: Runtime, conversation: Conversation) -> _View:
    async with runtime.database.session() as session:
        latest = (
            await session.scalars(
                select(Message)
                .where(Message.tenant_id == conversation.tenant_id, Message.conversation_id == conversation.id)
                .order_by(Message.created_at.desc())
                .limit(HISTORY_LIMIT)
            )
        ).all()
        rows = list(reversed(latest))
        first_inbound = await session.scalar(
            select(func.min(Message.created_at)).where(
                Message.tenant_id == conversation.tenant_id,
                Message.conversation_id == conversation.id,
                Message.direction == "inbound",
            )
        )
        wamids = [
            row.wamid
            for row in rows
            if row.direction == "inbound" and row.wamid and (row.details or {}).get("media_id")
        ]
        copies = (
            (
                await session.scalars(
                    select(Media).where(Media.tenant_id == conversation.tenant_id, Media.wamid.in_(wamids))
                )
            ).all()
            if wamids
            else []
        )
    media: dict[str, MediaView] = {}
    kinds = {row.wamid: row.kind for row in rows if row.wamid}
    for copy in copies:
        url = await runtime.store.url(copy.object_key, expires_in=MEDIA_URL_SECONDS)
        media[copy.wamid] = MediaView(kinds.get(copy.wamid, "document"), url, copy.mime_type, copy.filename)
    last = conversation.last_customer_message_at
    return _View(
        conversation=conversation,
        bubbles=bubbles(rows, media),
        first_contact=as_utc(first_inbound) if first_inbound else as_utc(conversation.created_at),
        last_contact=as_utc(last) if last else None,
    )


def _window(conversation: Conversation) -> dict[str, Any]:
    """The 24-hour window: open or not, and when it closes (the one rule: `state.service.window_open`)."""
    last = conversation.last_customer_message_at
    now = utcnow()
    closes_at = as_utc(last) + CUSTOMER_SERVICE_WINDOW if last else None
    return {
        "open": window_open(conversation, now),
        "closesAt": closes_at.isoformat().replace("+00:00", "Z") if closes_at else None,
        "secondsLeft": max(0, int((closes_at - now).total_seconds())) if closes_at else 0,
        "never": last is None,
    }


def _can_send(principal: Principal) -> bool:
    return principal.role in (Role.AGENT, Role.TENANT_ADMIN)


def _render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def _bubble_html(bubble: Bubble, labels: dict[str, str], can_send: bool) -> str:
    return _render("_bubble.html", bubble=bubble, labels=labels, can_send=can_send, reactions=REACTIONS)


def _not_found(labels: dict[str, str]) -> HTMLResponse:
    return HTMLResponse(_render("not_found.html", labels=labels), status_code=404, headers=_NO_STORE)


@router.get(
    "/widget/api/conversations/{conversationId}",
    response_class=HTMLResponse,
    summary="Widget view",
    responses=json_error_responses(400, 403, 404),
)
async def conversation_view(
    conversation_id: ConversationIdPath, runtime: RuntimeDep, principal: Reader, lang: Lang = "en"
) -> HTMLResponse:
    """The customer, the 24-hour window, the history and the composer, as an HTML fragment."""
    labels = labels_for(lang)
    try:
        conversation = await _conversation(runtime, principal, conversation_id)
    except NotFound:
        return _not_found(labels)
    view = await _view(runtime, conversation)
    can_send = _can_send(principal)
    html = _render(
        "conversation.html",
        view=view,
        labels=labels,
        window=_window(conversation),
        can_send=can_send,
        bubble_html=lambda b: _bubble_html(b, labels, can_send),
    )
    return HTMLResponse(html, headers=_NO_STORE)


async def _fingerprint(runtime: Runtime, conversation: Conversation) -> tuple[Any, ...]:
    """Cheap: changes whenever a message of the conversation or its window changes."""
    async with runtime.database.session() as session:
        messages = (
            await session.execute(
                select(func.count(Message.id), func.max(Message.updated_at)).where(
                    Message.tenant_id == conversation.tenant_id, Message.conversation_id == conversation.id
                )
            )
        ).one()
        window = await session.scalar(
            select(Conversation.last_customer_message_at).where(
                Conversation.id == conversation.id, Conversation.tenant_id == conversation.tenant_id
            )
        )
    return (messages[0], messages[1], window)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventStream(StreamingResponse):
    """A server-sent event stream (so the API document names its media type)."""

    media_type = "text/event-stream"


@router.get(
    "/widget/api/conversations/{conversationId}/events",
    summary="Widget live updates (SSE)",
    response_class=EventStream,
    responses=json_error_responses(400, 403, 404),
)
async def conversation_events(
    conversation_id: ConversationIdPath, request: Request, runtime: RuntimeDep, principal: Reader, lang: Lang = "en"
) -> Response:
    """Server-sent events: `bubble` (a message's HTML, new or changed) and `window` (its state), until the
    widget closes the connection (on the SDK's `stop`) or the agent leaves."""
    conversation = await _conversation(runtime, principal, conversation_id)
    labels = labels_for(lang)
    can_send = _can_send(principal)
    poll = runtime.settings.widget_poll_seconds

    async def stream() -> AsyncIterator[bytes]:
        shown: dict[str, str] = {}
        last: tuple[Any, ...] | None = None
        window_state: dict[str, Any] | None = None
        quiet_since = time.monotonic()
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            current = await _fingerprint(runtime, conversation)
            if current != last:
                last = current
                async with runtime.database.session() as session:
                    fresh = await session.get(Conversation, conversation.id)
                if fresh is None:
                    return
                view = await _view(runtime, fresh)
                for bubble in view.bubbles:
                    html = _bubble_html(bubble, labels, can_send)
                    if shown.get(bubble.id) != html:
                        shown[bubble.id] = html
                        yield _sse(
                            "bubble",
                            {"id": bubble.id, "html": html, "direction": bubble.direction,
                             "status": bubble.status, "failure": bubble.failure},
                        )  # fmt: skip
                state = _window(fresh)
                if window_state is None or (state["open"], state["closesAt"]) != (
                    window_state["open"],
                    window_state["closesAt"],
                ):
                    window_state = state
                    yield _sse("window", state)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(poll)

    headers = {**_NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


# -- templates -----------------------------------------------------------------------------------------


async def _templates(runtime: Runtime, tenant: TenantRuntime) -> list[WabaTemplate]:
    settings = runtime.settings
    return await fetch_templates(
        runtime.http, runtime.cache, tenant, graph_url=settings.meta_graph_url, api_version=settings.meta_api_version
    )


@router.get(
    "/widget/api/conversations/{conversationId}/templates",
    response_class=HTMLResponse,
    responses=json_error_responses(400, 403, 404),
)
async def template_picker(
    conversation_id: ConversationIdPath, runtime: RuntimeDep, principal: Sender, lang: Lang = "en"
) -> HTMLResponse:
    """The approved templates: a picker by name and language, the inputs of each, a live preview."""
    conversation = await _conversation(runtime, principal, conversation_id)
    templates = await _templates(runtime, await _tenant(runtime, conversation))
    html = _render("_templates.html", templates=templates, labels=labels_for(lang))
    return HTMLResponse(html, headers=_NO_STORE)


class TemplateSend(BaseModel):
    """A template with every placeholder's value (`header.<name>`, `body.<name>`, `button.<index>`)."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=3, max_length=600, description="name|language, as the picker offers it")
    values: dict[str, Annotated[str, Field(max_length=1024)]] = Field(default_factory=dict, max_length=100)
    header_media_url: str | None = Field(default=None, alias="headerMediaUrl", max_length=2000)
    header_media_filename: str | None = Field(default=None, alias="headerMediaFilename", max_length=240)


# What each media header format takes (Meta's template header media types).
_HEADER_MEDIA: Final = {"IMAGE": ("image/jpeg", "image/png"), "VIDEO": ("video/mp4", "video/3gpp")}


def _header_media_url(value: str, header_format: str | None) -> str:
    """The header media URL, checked before anything is sent: https, no credentials, and not a file whose
    name says it is of another type than the header takes (a name without a known extension passes)."""
    parts = urlsplit(value.strip())
    plain_http_ok = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")  # the sandbox
    if (parts.scheme != "https" and not plain_http_ok) or not parts.netloc or parts.username or parts.password:
        raise BadRequest("headerMediaUrl: must be an https URL", field="headerMediaUrl")
    guessed = mimetypes.guess_type(parts.path)[0]
    allowed = _HEADER_MEDIA.get(header_format or "")
    kind = media_kind(guessed)
    wrong = (guessed not in allowed) if allowed else (kind is None or kind.whatsapp_type != "document")
    if guessed is not None and wrong:
        wanted = " or ".join(allowed) if allowed else "a document"
        raise BadRequest(
            f"headerMediaUrl: this template's header takes {wanted}, not {guessed}", field="headerMediaUrl"
        )
    return value.strip()


def notification_content(template: WabaTemplate, body: TemplateSend, *, namespace: str) -> tuple[str, dict[str, Any]]:
    """The Genesys `Notification` item for a filled template, and its text for the transcript (pure)."""
    values: dict[str, dict[str, str]] = {"header": {}, "body": {}, "button": {}}
    for placeholder in template.placeholders:
        key = f"{placeholder.component}.{placeholder.index if placeholder.component == 'button' else placeholder.name}"
        value = (body.values.get(key) or "").strip()
        if not value:
            raise BadRequest(f"values.{key}: every parameter of the template needs a value", field=f"values.{key}")
        values[placeholder.component][placeholder.name if placeholder.component != "button" else key] = value
    notification: dict[str, Any] = {
        "id": f"{namespace}@{template.name}",
        "language": template.language.replace("_", "-"),
    }
    lines: list[str] = []
    if template.media_header:
        if not body.header_media_url:
            raise BadRequest(
                "headerMediaUrl: this template's header needs an image, video or document", field="headerMediaUrl"
            )
        media_type = {"IMAGE": "Image", "VIDEO": "Video"}.get(template.header_format or "", "File")
        url = _header_media_url(body.header_media_url, template.header_format)
        media: dict[str, Any] = {"url": url, "mediaType": media_type}
        if body.header_media_filename:
            media["filename"] = body.header_media_filename
        notification["header"] = {"type": "Media", "media": media}
        lines.append(f"[{(template.header_format or 'media').lower()}]")
    elif template.header_text:
        text = render(template.header_text, values["header"])
        notification["header"] = {
            "type": "Text",
            "text": text,
            "parameters": [{"name": name, "text": value} for name, value in values["header"].items()],
        }
        lines.append(text)
    body_text = render(template.body, values["body"])
    notification["body"] = {
        "text": body_text,
        "parameters": [{"name": name, "text": value} for name, value in values["body"].items()],
    }
    lines.append(body_text)
    if template.footer:
        lines.append(template.footer)
    buttons = []
    for index, button in enumerate(template.buttons):
        suffix = values["button"].get(f"button.{index}")
        if button.type == "URL" and suffix is not None:
            buttons.append({"type": "Url", "index": index, "text": button.text, "parameters": [{"text": suffix}]})
    if buttons:
        notification["buttons"] = buttons
    return "\n".join(line for line in lines if line), {"contentType": "Notification", "template": notification}


@router.post(
    "/widget/api/conversations/{conversationId}/templates",
    summary="Send a template from the widget",
    responses=error_responses(400, 403, 404, 409, 503),
)
async def send_template(
    conversation_id: ConversationIdPath, body: TemplateSend, runtime: RuntimeDep, principal: Sender
) -> JSONResponse:
    """Send an approved template through Genesys (so it is in the transcript); the outbound path sends it
    to WhatsApp as the template. Templates may go outside the 24-hour window."""
    conversation = await _conversation(runtime, principal, conversation_id)
    tenant = await _tenant(runtime, conversation)
    templates = {t.key: t for t in await _templates(runtime, tenant)}
    template = templates.get(body.template)
    if template is None:
        raise BadRequest("template: not an approved template of this WhatsApp account", field="template")
    text, content = notification_content(template, body, namespace=tenant.wa_waba_id)
    genesys_id = await send_through_genesys(runtime, tenant, conversation, text=text, content=[content])
    log.info("widget.template_sent", tenant_id=tenant.id, template=template.name, user_id=principal.user_id)
    return JSONResponse({"genesysMessageId": genesys_id, "text": text}, status_code=202)


# -- other sends ---------------------------------------------------------------------------------------


class TextSend(BaseModel):
    """Free text, optionally replying to one customer message (our message id)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4096)
    reply_to: str | None = Field(default=None, alias="replyTo", max_length=64)


class InteractiveSend(BaseModel):
    """Reply buttons (1 to 3) or a list (1 to 10 rows)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(pattern="^(buttons|list)$")
    text: str = Field(min_length=1, max_length=1024)
    options: list[Annotated[str, Field(min_length=1, max_length=24)]] = Field(min_length=1, max_length=10)
    list_button: str | None = Field(default=None, alias="listButton", max_length=20)


class ReactionSend(BaseModel):
    """An emoji on one customer message (our message id); empty removes it."""

    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(alias="messageId", min_length=1, max_length=64)
    emoji: str = Field(max_length=16)


def _window_must_be_open(conversation: Conversation) -> None:
    if not window_open(conversation, utcnow()):
        raise XyprErrorWindowClosed()


class XyprErrorWindowClosed(XyprError):
    """Free-form messages outside the 24-hour window: WhatsApp would refuse them (131047)."""

    status_code = 409
    code = "window_closed"

    def __init__(self) -> None:
        super().__init__("the 24-hour window is closed: only an approved template can be sent")


async def _customer_message(runtime: Runtime, conversation: Conversation, message_id: str) -> Message:
    async with runtime.database.session() as session:
        row = await session.scalar(
            select(Message).where(
                Message.id == message_id,
                Message.tenant_id == conversation.tenant_id,
                Message.conversation_id == conversation.id,
            )
        )
    if row is None or not row.wamid:
        raise NotFound("no such message in this conversation", field="messageId")
    return row


@router.post(
    "/widget/api/conversations/{conversationId}/messages",
    summary="Send text from the widget",
    responses=error_responses(400, 403, 404, 409, 503),
)
async def send_text(
    conversation_id: ConversationIdPath, body: TextSend, request: Request, runtime: RuntimeDep, principal: Sender
) -> JSONResponse:
    """Text through Genesys; a reply quoting a customer message goes straight to WhatsApp (Open Messaging
    has no way to say which message it answers)."""
    conversation = await _conversation(runtime, principal, conversation_id)
    _window_must_be_open(conversation)
    tenant = await _tenant(runtime, conversation)
    if body.reply_to:
        quoted = await _customer_message(runtime, conversation, body.reply_to)
        message_id = await queue_whatsapp(
            runtime, tenant, conversation, kind="text", text=body.text,
            payload={"type": "text", "context": {"message_id": quoted.wamid}, "text": {"body": body.text}},
            details={"replyTo": quoted.wamid, "requested_by": principal.user_id},
            correlation_id=correlation_id(request),
        )  # fmt: skip
        return JSONResponse({"messageId": message_id}, status_code=202)
    genesys_id = await send_through_genesys(runtime, tenant, conversation, text=body.text)
    return JSONResponse({"genesysMessageId": genesys_id}, status_code=202)


@router.post(
    "/widget/api/conversations/{conversationId}/interactive",
    summary="Send reply buttons or a list",
    responses=error_responses(400, 403, 404, 409, 503),
)
async def send_interactive(
    conversation_id: ConversationIdPath, body: InteractiveSend, runtime: RuntimeDep, principal: Sender
) -> JSONResponse:
    """Quick replies through Genesys: up to 3 become WhatsApp reply buttons, up to 10 a list."""
    if body.kind == "buttons" and len(body.options) > 3:
        raise BadRequest("options: reply buttons are at most 3", field="options")
    conversation = await _conversation(runtime, principal, conversation_id)
    _window_must_be_open(conversation)
    tenant = await _tenant(runtime, conversation)
    content: list[dict[str, Any]]
    if body.kind == "buttons":
        content = [
            {"contentType": "QuickReply", "quickReply": {"text": option, "payload": option, "action": "Message"}}
            for option in body.options
        ]
    else:  # a list picker stays a WhatsApp list even with three rows or fewer
        items = [{"id": option, "title": option} for option in body.options]
        reply = {"buttonLabel": body.list_button or "Options"}
        content = [
            {"contentType": "ListPicker", "listPicker": {"sections": [{"items": items}], "receivedMessage": reply}}
        ]
    genesys_id = await send_through_genesys(runtime, tenant, conversation, text=body.text, content=content)
    return JSONResponse({"genesysMessageId": genesys_id}, status_code=202)


@router.post(
    "/widget/api/conversations/{conversationId}/reactions",
    summary="React to a customer message",
    responses=error_responses(400, 403, 404, 409, 503),
)
async def send_reaction(
    conversation_id: ConversationIdPath, body: ReactionSend, request: Request, runtime: RuntimeDep, principal: Sender
) -> JSONResponse:
    """An emoji reaction on a customer message, straight to WhatsApp (inside the window, as Meta requires)."""
    conversation = await _conversation(runtime, principal, conversation_id)
    _window_must_be_open(conversation)
    tenant = await _tenant(runtime, conversation)
    target = await _customer_message(runtime, conversation, body.message_id)
    message_id = await queue_whatsapp(
        runtime, tenant, conversation, kind="reaction", text=None,
        payload={"type": "reaction", "reaction": {"message_id": target.wamid, "emoji": body.emoji}},
        details={"reaction": {"messageId": target.wamid, "emoji": body.emoji}, "requested_by": principal.user_id},
        correlation_id=correlation_id(request),
    )  # fmt: skip
    return JSONResponse({"messageId": message_id}, status_code=202)


async def _read_upload(file: UploadFile) -> tuple[bytes, str, int]:
    """The upload's bytes and WhatsApp type, checked against WhatsApp's limits while reading."""
    mime = (file.content_type or "").split(";")[0].strip().lower()
    kind = media_kind(mime)
    if kind is None:
        raise BadRequest(f"file: WhatsApp does not accept {mime or 'this type of file'}", field="file")
    data = await file.read(kind.max_bytes + 1)
    if len(data) > kind.max_bytes:
        raise BadRequest(
            f"file: larger than WhatsApp's {kind.max_bytes // (1024 * 1024)} MB for this type", field="file"
        )
    if not data:
        raise BadRequest("file: is empty", field="file")
    return data, mime, kind.max_bytes


@router.post(
    "/widget/api/conversations/{conversationId}/media",
    summary="Send a file from the widget",
    responses=error_responses(400, 403, 404, 409, 503),
)
async def send_media(
    conversation_id: ConversationIdPath,
    request: Request,
    runtime: RuntimeDep,
    principal: Sender,
    file: Annotated[UploadFile, File()],
    caption: Annotated[str, Form(max_length=1024)] = "",
) -> JSONResponse:
    """Image, video, audio, document or sticker, checked for type and size, uploaded to Meta by whatsapp-api."""
    conversation = await _conversation(runtime, principal, conversation_id)
    _window_must_be_open(conversation)
    tenant = await _tenant(runtime, conversation)
    data, mime, _limit = await _read_upload(file)
    kind = media_kind(mime)
    assert kind is not None
    name = file.filename or f"attachment.{mime.rsplit('/', 1)[-1]}"
    key = await store_attachment(runtime, tenant, data=data, mime_type=mime, name=name)
    part: dict[str, Any] = {}
    if caption and kind.takes_caption:
        part["caption"] = caption
    if kind.whatsapp_type == "document":
        part["filename"] = name
    message_id = await queue_whatsapp(
        runtime, tenant, conversation, kind=kind.whatsapp_type, text=caption or f"[{kind.whatsapp_type}: {name}]",
        payload={"type": kind.whatsapp_type, kind.whatsapp_type: part},
        details={"media": {"objectKey": key, "mime": mime, "filename": name}, "requested_by": principal.user_id},
        correlation_id=correlation_id(request),
        media=[MediaUpload(part=0, object_key=key, mime_type=mime, filename=name)],
    )  # fmt: skip
    return JSONResponse({"messageId": message_id}, status_code=202)


@router.post(
    "/widget/api/conversations/{conversationId}/uploads",
    summary="Keep a template header file",
    responses=error_responses(400, 403, 404, 409, 503),
)
async def upload_header(
    conversation_id: ConversationIdPath, runtime: RuntimeDep, principal: Sender, file: Annotated[UploadFile, File()]
) -> JSONResponse:
    """A file for a template's media header, checked, kept, and answered as a URL Meta can fetch."""
    conversation = await _conversation(runtime, principal, conversation_id)
    tenant = await _tenant(runtime, conversation)
    data, mime, _limit = await _read_upload(file)
    name = file.filename or "header"
    key = await store_attachment(runtime, tenant, data=data, mime_type=mime, name=name)
    url = await runtime.store.url(key, expires_in=HEADER_MEDIA_URL_SECONDS)
    return JSONResponse({"url": url, "filename": name, "mimeType": mime}, status_code=201)
