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
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from xypr.auth.principal import Principal, Role, require_roles
from xypr.backends.db.base import as_utc, utcnow
from xypr.config import Settings
from xypr.core.apimodel import ApiModel
from xypr.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    TransientError,
    UnsupportedMediaType,
    XyprError,
)
from xypr.core.logging import get_logger
from xypr.events import MediaUpload
from xypr.genesys.attachments import AttachmentPolicy, AttachmentRefused, probe_attachment
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
from xypr.services.agent_widget.sends import send_through_genesys, store_attachment
from xypr.services.deps import RuntimeDep, correlation_id
from xypr.services.openapi import ErrorBody, error_responses, json_error_responses, model_schema
from xypr.services.whatsapp_sends import queue_whatsapp
from xypr.state.details import MessageDetails, Reaction, WidgetAttachment
from xypr.state.models import Conversation, Media, Message
from xypr.state.service import CUSTOMER_SERVICE_WINDOW, window_open
from xypr.tenants.service import TenantRuntime
from xypr.transform.outbound import (
    BUTTON_TITLE_MAX,
    BUTTONS_MAX,
    INTERACTIVE_BODY_MAX,
    LIST_BUTTON_MAX,
    LIST_ROWS_MAX,
    ROW_TITLE_MAX,
)
from xypr.whatsapp.mediatypes import accepted_media, media_kind, mime_of

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
# Meta's template names (lowercase letters, digits, `_`, at most 512) and language codes (`en_US`, `es`, `pt_BR`).
TEMPLATE_NAME_MAX: Final = 512
TEMPLATE_KEY: Final = r"^[a-z0-9_]{1,512}\|[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$"
# A placeholder's value: `header.<name>`, `body.<name>` (names as in `{{name}}`) or `button.<position>`.
VALUE_KEY: Final = r"^((header|body)\.[A-Za-z0-9_]{1,128}|button\.[0-9]{1,2})$"
REACTIONS: Final = ("👍", "❤️", "😂", "😮", "😢", "🙏")
_NO_STORE: Final = {"Cache-Control": "no-store"}


# -- what the API answers ------------------------------------------------------------------------------


class GenesysSent(ApiModel):
    """A message posted into the customer's Genesys conversation (the outbound path sends it to WhatsApp)."""

    genesys_message_id: str = Field(description="Genesys's id of the message")


class TemplateSent(GenesysSent):
    """A template posted into the conversation, with the text the transcript shows."""

    text: str


class WhatsAppQueued(ApiModel):
    """A message queued for WhatsApp directly (reactions, quoted replies, files)."""

    message_id: str = Field(description="Xypr's id of the message (its status follows on the live stream)")


class HeaderFile(ApiModel):
    """A kept template header file: the URL Meta fetches it from (valid for 24 hours)."""

    url: str
    filename: str
    mime_type: str


class BubbleEvent(ApiModel):
    """`event: bubble`: one message of the thread, new or changed (its status, a failure), ready to show."""

    id: str = Field(description="Xypr's id of the message; a later event with the same id replaces it")
    html: str = Field(description="The message as an HTML fragment of the widget")
    direction: Literal["in", "out"] = Field(description="`in`: the customer's; `out`: the business's")
    status: str | None = Field(description="Business messages: received, sent, delivered, read or failed")
    failure: str | None = Field(description="Why a business message failed, for the agent")


class WindowEvent(ApiModel):
    """`event: window`: the 24-hour customer service window, sent first and whenever it opens or closes."""

    open: bool
    closes_at: datetime | None = Field(description="When the window closes (null: the customer never wrote)")
    seconds_left: int = Field(ge=0)
    never: bool = Field(description="True when the customer has never written (only templates can be sent)")


_CONVERSATION_NOT_FOUND: Final = {
    "model": ErrorBody,
    "description": "Conversation not found: no conversation of the caller's tenant has this id",
}
_WINDOW_OR_TENANT: Final = {
    "model": ErrorBody,
    "description": "`window_closed`: the 24-hour window is closed (only a template can be sent); "
    "`conflict`: the tenant is not active",
}


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
            if row.direction == "inbound" and row.wamid and row.details and row.details.media_id
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


def _sse(event: str, data: ApiModel) -> bytes:
    """One event: its name and its data, one JSON object of the model the API document names for it."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data.model_dump(mode="json")) + b"\n\n"


def _event(name: str, data: type[ApiModel]) -> dict[str, Any]:
    """The schema of one server-sent event: its name and its `data`, a JSON text of `data`'s schema."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": model_schema(data)},
        },
    }


_EVENTS_DESCRIPTION: Final = f"""Server-sent events (`text/event-stream`): the widget's live view of the conversation.

The stream starts with `retry: 2000` (the reconnection delay in milliseconds), then sends the thread (its
latest {HISTORY_LIMIT} messages) and the window, then each change as it happens (looked for every
`WIDGET_POLL_SECONDS`). Each event is an `event:` line naming it and one `data:` line holding one JSON object:

- `bubble`: a message, new or changed (its status, a failure); data: `BubbleEvent`
  (`#/components/schemas/BubbleEvent`). A later `bubble` with the same `id` replaces the earlier one.
- `window`: the 24-hour window, first and whenever it opens or closes; data: `WindowEvent`
  (`#/components/schemas/WindowEvent`).

A comment line (`: keep-alive`) follows {HEARTBEAT_SECONDS:g} seconds without an event. The stream has no end
of its own: it runs until the client closes the connection (the widget does on the SDK's `stop`, or when
the agent leaves); a client reconnecting is sent the thread and the window again. Errors (401, 403, 404
"Conversation not found") are answered before the stream starts, as JSON."""


class EventStream(StreamingResponse):
    """A server-sent event stream (so the API document names its media type)."""

    media_type = "text/event-stream"


@router.get(
    "/widget/api/conversations/{conversationId}/events",
    summary="Widget live updates (SSE)",
    response_class=EventStream,
    description=_EVENTS_DESCRIPTION,
    responses={
        200: {
            "description": "The event stream (see the operation's description)",
            "content": {
                # Each event (Open API 3.1 has no `itemSchema`: `schema` describes one event, as 3.2's does).
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "oneOf": [_event("bubble", BubbleEvent), _event("window", WindowEvent)],
                    }
                },
            },
        },
        **json_error_responses(400, 403, 404),
    },
)
async def conversation_events(
    conversation_id: ConversationIdPath, request: Request, runtime: RuntimeDep, principal: Reader, lang: Lang = "en"
) -> Response:
    """Server-sent events: `bubble` (a message's HTML, new or changed) and `window` (its state), until the
    widget closes the connection (on the SDK's `stop`) or the agent leaves (the document says more)."""
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
                            BubbleEvent(id=bubble.id, html=html, direction=bubble.direction,  # type: ignore[arg-type]
                                        status=bubble.status, failure=bubble.failure),
                        )  # fmt: skip
                state = _window(fresh)
                if window_state is None or (state["open"], state["closesAt"]) != (
                    window_state["open"],
                    window_state["closesAt"],
                ):
                    window_state = state
                    yield _sse("window", WindowEvent.model_validate(state))
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(poll)

    headers = {**_NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


# -- templates -----------------------------------------------------------------------------------------


async def _templates(runtime: Runtime, tenant: TenantRuntime, *, approved_only: bool = True) -> list[WabaTemplate]:
    settings = runtime.settings
    return await fetch_templates(
        runtime.http,
        runtime.cache,
        tenant,
        graph_url=settings.meta_graph_url,
        api_version=settings.meta_api_version,
        approved_only=approved_only,
    )


@router.get(
    "/widget/api/conversations/{conversationId}/templates",
    response_class=HTMLResponse,
    summary="Widget template picker",
    responses=json_error_responses(400, 403, 404, 503),
)
async def template_picker(
    conversation_id: ConversationIdPath, runtime: RuntimeDep, principal: Sender, lang: Lang = "en"
) -> HTMLResponse:
    """The WhatsApp account's approved templates, as an HTML fragment: a picker by name and language, the
    inputs of each, a live preview (503 when Meta cannot be asked)."""
    conversation = await _conversation(runtime, principal, conversation_id)
    templates = await _templates(runtime, await _tenant(runtime, conversation))
    html = _render("_templates.html", templates=templates, labels=labels_for(lang))
    return HTMLResponse(html, headers=_NO_STORE)


class TemplateSend(BaseModel):
    """A template with every placeholder's value (`header.<name>`, `body.<name>`, `button.<index>`)."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        max_length=TEMPLATE_NAME_MAX + 1 + 12,  # the longest the pattern takes: `name|xxx_yyyyyyyy`
        pattern=TEMPLATE_KEY,
        description="`name|language` as the picker offers it: Meta's template name (lowercase letters, digits, "
        "`_`) and its language code (`en_US`, `es`)",
    )
    values: dict[Annotated[str, Field(pattern=VALUE_KEY)], Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict,
        max_length=100,
        description="Each placeholder's value: `header.<name>` and `body.<name>` (`{{1}}` is `body.1`), "
        "`button.<position>` for a URL button's suffix. Every placeholder of the template needs a non-blank "
        "value (400 names the one missing); values of names the template does not have are ignored.",
        json_schema_extra={"additionalProperties": False},  # a key of another form is refused
    )
    header_media_url: str | None = Field(
        default=None,
        alias="headerMediaUrl",
        max_length=2000,
        description="For a template with an image, video or document header (else ignored): an https URL, "
        "without credentials, of a file of the header's type (image/jpeg or image/png, video/mp4 or "
        "video/3gpp, a document), e.g. the `url` of POST …/uploads",
    )
    header_media_filename: str | None = Field(default=None, alias="headerMediaFilename", max_length=240)


# What each media header format takes (Meta's template header media types).
_HEADER_MEDIA: Final = {"IMAGE": ("image/jpeg", "image/png"), "VIDEO": ("video/mp4", "video/3gpp")}


async def _reachable_header_media(settings: Settings, url: str, header_format: str | None) -> None:
    """Before a template goes out: its header media answers, with a file of the header's type and within
    WhatsApp's size for it — fetched as an agent attachment is (public addresses only; our own origin and the
    Genesys API's trusted), reading no body. Otherwise 400, saying why, and nothing is sent."""
    allowed = _HEADER_MEDIA.get(header_format or "")

    def takes(mime: str) -> bool:
        kind = media_kind(mime_of(mime, None))
        return mime in allowed if allowed else kind is not None and kind.whatsapp_type == "document"

    policy = AttachmentPolicy.from_settings(
        genesys_api_url=settings.genesys_api_url,
        host_allowlist=settings.attachment_host_allowlist,
        timeout_seconds=settings.http_timeout_seconds,
        accepts_type=takes,
        also_trusted=[settings.public_url],
    )
    # WhatsApp's size for the header's media: the largest of its types (a document's for a document header).
    limit = max(kind.max_bytes for mime in allowed or ("application/pdf",) if (kind := media_kind(mime)))
    try:
        await probe_attachment(url, policy=policy, max_bytes=limit)
    except AttachmentRefused as exc:
        raise BadRequest(f"headerMediaUrl: {exc.message}", field="headerMediaUrl") from exc
    except TransientError as exc:
        raise BadRequest(
            f"headerMediaUrl: the file could not be reached right now ({exc.message}); try again",
            field="headerMediaUrl",
        ) from exc


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
    status_code=202,
    responses=error_responses(
        400,
        403,
        503,
        also={
            202: {"model": TemplateSent, "description": "Sent through Genesys"},
            404: {
                "model": ErrorBody,
                "description": "Conversation not found, or the WhatsApp account has no "
                "template of this name and language",
            },
            409: {
                "model": ErrorBody,
                "description": "The template is not approved (pending, rejected, paused, "
                "disabled: Meta sends approved templates only), or the tenant is not active",
            },
        },
    ),
)
async def send_template(
    conversation_id: ConversationIdPath, body: TemplateSend, runtime: RuntimeDep, principal: Sender
) -> JSONResponse:
    """Send an approved template through Genesys (so it is in the transcript); the outbound path sends it
    to WhatsApp as the template. Templates may go outside the 24-hour window."""
    conversation = await _conversation(runtime, principal, conversation_id)
    tenant = await _tenant(runtime, conversation)
    templates = {t.key: t for t in await _templates(runtime, tenant, approved_only=False)}
    template = templates.get(body.template)
    if template is None:
        raise NotFound(f"template: this WhatsApp account has no template {body.template}", field="template")
    if not template.approved:
        raise Conflict(
            f"template: {body.template} is {template.status.lower() or 'not approved'}; only approved templates "
            "can be sent",
            field="template",
        )
    text, content = notification_content(template, body, namespace=tenant.wa_waba_id)
    if template.media_header and body.header_media_url:
        await _reachable_header_media(runtime.settings, body.header_media_url.strip(), template.header_format)
    genesys_id = await send_through_genesys(runtime, tenant, conversation, text=text, content=[content])
    log.info("widget.template_sent", tenant_id=tenant.id, template=template.name, user_id=principal.user_id)
    return JSONResponse({"genesysMessageId": genesys_id, "text": text}, status_code=202)


# -- other sends ---------------------------------------------------------------------------------------


class TextSend(BaseModel):
    """Free text, optionally replying to one customer message (our message id)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4096)
    reply_to: str | None = Field(default=None, alias="replyTo", max_length=64)


class ButtonsSend(BaseModel):
    """Reply buttons: 1 to 3 titles of at most 20 characters (WhatsApp's limits for reply buttons)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["buttons"]
    text: str = Field(min_length=1, max_length=INTERACTIVE_BODY_MAX)
    options: list[Annotated[str, Field(min_length=1, max_length=BUTTON_TITLE_MAX)]] = Field(
        min_length=1, max_length=BUTTONS_MAX, description="The buttons' titles, in order"
    )


class ListSend(BaseModel):
    """A list: 1 to 10 rows of at most 24 characters in one section, opened by a button of at most 20."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["list"]
    text: str = Field(min_length=1, max_length=INTERACTIVE_BODY_MAX)
    options: list[Annotated[str, Field(min_length=1, max_length=ROW_TITLE_MAX)]] = Field(
        min_length=1, max_length=LIST_ROWS_MAX, description="The rows' titles, in order"
    )
    list_button: str | None = Field(
        default=None,
        alias="listButton",
        min_length=1,
        max_length=LIST_BUTTON_MAX,
        description='The label of the button that opens the list (absent: "Options")',
    )


# One body, two shapes told apart by `kind`: the document carries each shape's limits.
InteractiveSend = Annotated[ButtonsSend | ListSend, Field(discriminator="kind")]


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
    status_code=202,
    responses=error_responses(
        400,
        403,
        503,
        also={
            202: {
                "model": GenesysSent | WhatsAppQueued,
                "description": "Sent through Genesys, or a quoted reply queued for WhatsApp",
            },
            404: {
                "model": ErrorBody,
                "description": "Conversation not found, or `replyTo` names no customer message of it",
            },
            409: _WINDOW_OR_TENANT,
        },
    ),
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
            details=MessageDetails(reply_to=quoted.wamid, requested_by=principal.user_id),
            correlation_id=correlation_id(request),
        )  # fmt: skip
        return JSONResponse({"messageId": message_id}, status_code=202)
    genesys_id = await send_through_genesys(runtime, tenant, conversation, text=body.text)
    return JSONResponse({"genesysMessageId": genesys_id}, status_code=202)


@router.post(
    "/widget/api/conversations/{conversationId}/interactive",
    summary="Send reply buttons or a list",
    status_code=202,
    responses=error_responses(
        400,
        403,
        503,
        also={
            202: {"model": GenesysSent, "description": "Sent through Genesys"},
            404: _CONVERSATION_NOT_FOUND,
            409: _WINDOW_OR_TENANT,
        },
    ),
)
async def send_interactive(
    conversation_id: ConversationIdPath, body: InteractiveSend, runtime: RuntimeDep, principal: Sender
) -> JSONResponse:
    """Quick replies through Genesys, inside the 24-hour window: `kind: buttons` becomes WhatsApp reply
    buttons (1 to 3 titles of at most 20 characters), `kind: list` a WhatsApp list (1 to 10 rows of at most
    24 characters, one section, its button labelled `listButton`, at most 20). The text is at most 1,024
    characters. Titles that repeat are numbered on the way to WhatsApp, which refuses duplicates."""
    conversation = await _conversation(runtime, principal, conversation_id)
    _window_must_be_open(conversation)
    tenant = await _tenant(runtime, conversation)
    content: list[dict[str, Any]]
    if isinstance(body, ButtonsSend):
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
    status_code=202,
    responses=error_responses(
        400,
        403,
        503,
        also={
            202: {"model": WhatsAppQueued, "description": "Queued for WhatsApp"},
            404: {
                "model": ErrorBody,
                "description": "Conversation not found, or `messageId` names no customer message of it",
            },
            409: _WINDOW_OR_TENANT,
        },
    ),
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
        details=MessageDetails(
            reaction=Reaction(message_id=target.wamid or "", emoji=body.emoji), requested_by=principal.user_id
        ),
        correlation_id=correlation_id(request),
    )  # fmt: skip
    return JSONResponse({"messageId": message_id}, status_code=202)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def _upload_rules() -> str:
    """The types a file part may have and the largest file of each, as the document states them."""
    by_limit: dict[int, list[str]] = {}
    for mime, kind in accepted_media().items():
        by_limit.setdefault(kind.max_bytes, []).append(mime)
    return "; ".join(f"{', '.join(types)}: at most {_size(limit)}" for limit, types in sorted(by_limit.items()))


# The file part of a widget upload: WhatsApp's media types (the part's `Content-Type`).
_FILE_PART: Final = {
    "requestBody": {
        "content": {"multipart/form-data": {"encoding": {"file": {"contentType": ", ".join(accepted_media())}}}}
    }
}
# The file itself: not empty (its type is the part's `Content-Type`, `_FILE_PART`).
FilePart = Annotated[
    UploadFile, File(description="The file (not empty)", json_schema_extra={"format": "binary", "minLength": 1})
]
_FILE_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    413: {
        "model": ErrorBody,
        "description": "The file is larger than WhatsApp takes for its type (the body may be up to the largest "
        "file WhatsApp takes, 100 MB, plus its multipart envelope)",
    },
    415: {"model": ErrorBody, "description": "The file's type is not one WhatsApp takes"},
}


async def _read_upload(file: UploadFile) -> tuple[bytes, str, int]:
    """The upload's bytes and WhatsApp type, checked against WhatsApp's limits while reading."""
    mime = (file.content_type or "").split(";")[0].strip().lower()
    kind = media_kind(mime)
    if kind is None:
        raise UnsupportedMediaType(f"file: WhatsApp does not accept {mime or 'this type of file'}", field="file")
    data = await file.read(kind.max_bytes + 1)
    if len(data) > kind.max_bytes:
        raise PayloadTooLarge(f"file: larger than WhatsApp's {_size(kind.max_bytes)} for {mime}", field="file")
    if not data:
        raise BadRequest("file: is empty", field="file")
    return data, mime, kind.max_bytes


@router.post(
    "/widget/api/conversations/{conversationId}/media",
    summary="Send a file from the widget",
    status_code=202,
    responses=error_responses(
        400,
        403,
        503,
        also={
            202: {"model": WhatsAppQueued, "description": "Queued for WhatsApp"},
            404: _CONVERSATION_NOT_FOUND,
            409: _WINDOW_OR_TENANT,
            **_FILE_ANSWERS,
        },
    ),
    openapi_extra=_FILE_PART,
    description="Image, video, audio, document or sticker (multipart: a `file` part, and a `caption` that "
    "images, videos and documents carry), checked for type and size, uploaded to Meta by whatsapp-api; inside "
    f"the 24-hour window only. The file part's types and largest sizes: {_upload_rules()}.",
)
async def send_media(
    conversation_id: ConversationIdPath,
    request: Request,
    runtime: RuntimeDep,
    principal: Sender,
    file: FilePart,
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
        details=MessageDetails(
            media=WidgetAttachment(object_key=key, mime=mime, filename=name), requested_by=principal.user_id
        ),
        correlation_id=correlation_id(request),
        media=[MediaUpload(part=0, object_key=key, mime_type=mime, filename=name)],
    )  # fmt: skip
    return JSONResponse({"messageId": message_id}, status_code=202)


@router.post(
    "/widget/api/conversations/{conversationId}/uploads",
    summary="Keep a template header file",
    status_code=201,
    responses=error_responses(
        400,
        403,
        503,
        also={201: {"model": HeaderFile, "description": "Kept"}, 404: _CONVERSATION_NOT_FOUND, **_FILE_ANSWERS},
    ),
    openapi_extra=_FILE_PART,
    description="A file for a template's media header (multipart: one `file` part), checked, kept, and "
    "answered as a URL Meta can fetch for 24 hours (the template's `headerMediaUrl`); the window does not "
    f"matter, templates go outside it. The file part's types and largest sizes: {_upload_rules()}.",
)
async def upload_header(
    conversation_id: ConversationIdPath, runtime: RuntimeDep, principal: Sender, file: FilePart
) -> JSONResponse:
    """A file for a template's media header, checked, kept, and answered as a URL Meta can fetch."""
    conversation = await _conversation(runtime, principal, conversation_id)
    tenant = await _tenant(runtime, conversation)
    data, mime, _limit = await _read_upload(file)
    name = file.filename or "header"
    key = await store_attachment(runtime, tenant, data=data, mime_type=mime, name=name)
    url = await runtime.store.url(key, expires_in=HEADER_MEDIA_URL_SECONDS)
    return JSONResponse({"url": url, "filename": name, "mimeType": mime}, status_code=201)
