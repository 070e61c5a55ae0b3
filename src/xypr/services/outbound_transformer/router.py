"""outbound-transformer HTTP: the pure Genesys → WhatsApp transform for tools, and sending a template."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import or_, select

from xypr.auth.principal import CurrentPrincipal, Principal
from xypr.backends.broker.base import BrokerUnavailable, OutgoingMessage
from xypr.core.errors import BackendUnavailable, Conflict, Forbidden, NotFound, XyprError
from xypr.core.logging import get_logger
from xypr.events import WhatsAppRequest, ordering_key
from xypr.genesys.content import TemplateParameter
from xypr.genesys.models import GenesysOutbound
from xypr.services.deps import RuntimeDep, correlation_id
from xypr.state.models import Conversation, Message
from xypr.topology import SEND_WHATSAPP
from xypr.transform.outbound import (
    TemplateButtonParameter,
    TemplateHeaderMedia,
    UnsupportedOutbound,
    mark_read,
    plan_outbound,
    recipient,
    template_send,
    typing_indicator,
)

__all__ = [
    "ButtonValue",
    "HeaderValue",
    "PlaceholderValue",
    "TemplateSendRequest",
    "TransformRequest",
    "UnsupportedMessage",
    "router",
]

log = get_logger(__name__)
router = APIRouter(tags=["outbound transform"])


class UnsupportedMessage(XyprError):
    """422: the Genesys message has no WhatsApp form; `reason` is the receipt reason the agent would get."""

    status_code = 422
    code = "unsupported_message"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def to_body(self) -> dict[str, object]:
        """The error body, with the Genesys receipt reason code."""
        return {"error": {"code": self.code, "message": self.message, "reason": self.reason}}


class TransformRequest(GenesysOutbound):
    """A Genesys outbound message as the webhook carries it, plus whom to address and, for events, which message."""

    to: str | None = Field(default=None, min_length=1, max_length=64, description="default: channel.to.id")
    to_id_type: Literal["Phone", "Opaque", "Email"] | None = Field(default=None, alias="toIdType")
    wamid: str | None = Field(
        default=None, max_length=200, description="the customer's message a typing indicator or read receipt is for"
    )


@router.post("/transform/outbound", summary="Genesys outbound message → WhatsApp Graph API bodies (no side effects)")
async def transform_outbound(request: TransformRequest, _principal: CurrentPrincipal) -> dict[str, Any]:
    """The Graph `/messages` bodies a Genesys message becomes, in order; nothing is sent or stored.

    An attachment's body lacks its media `id`: `media` says which URL is fetched and uploaded first.
    """
    to = request.to or request.channel.to.id
    # A given `to` is addressed by its own shape unless `toIdType` says otherwise.
    id_type = request.to_id_type or (None if request.to else request.channel.to.id_type)
    if request.type in ("Event", "Receipt"):
        if not request.wamid:
            raise UnsupportedMessage(
                f"a {request.type} needs `wamid`, the customer's message it refers to", reason="InvalidMessageStructure"
            )
        body = typing_indicator(request.wamid) if request.type == "Event" else mark_read(request.wamid)
        return {"messages": [body], "quickReplies": [], "media": [], "template": False}
    try:
        plan = plan_outbound(request, to=to, id_type=id_type)
    except UnsupportedOutbound as exc:
        raise UnsupportedMessage(str(exc), reason=exc.reason) from exc
    media = []
    if plan.attachment is not None:
        source = plan.attachment
        media.append(
            {
                "part": source.part,
                "url": source.url,
                "mimeType": source.mime_type,
                "type": source.whatsapp_type,
                "maxBytes": source.max_bytes,
                "filename": source.filename,
            }
        )
    return {
        "messages": plan.sends,
        "quickReplies": [choice.as_dict() for choice in plan.quick_replies],
        "media": media,
        "template": plan.is_template,
    }


class PlaceholderValue(BaseModel):
    """A placeholder value; `name` only for templates with named placeholders."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    text: str = Field(min_length=1, max_length=1024)


class ButtonValue(BaseModel):
    """A button's value: a quick reply's payload, or the dynamic part of a URL button."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    index: int = Field(ge=0, le=9)
    type: Literal["quick_reply", "url"] = Field(
        default="quick_reply", validation_alias=AliasChoices("type", "subType", "sub_type")
    )
    value: str = Field(min_length=1, max_length=2000, validation_alias=AliasChoices("value", "payload", "text"))


class HeaderValue(BaseModel):
    """The header's value: text parameters, or a media link (https)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "image", "video", "document"] = "text"
    parameters: list[str | PlaceholderValue] = Field(default_factory=list, max_length=10)
    link: str | None = Field(default=None, max_length=2000)
    filename: str | None = Field(default=None, max_length=240)

    @field_validator("link")
    @classmethod
    def _https(cls, link: str | None) -> str | None:
        if link is not None and not link.startswith("https://"):
            raise ValueError("must be an https URL")
        return link

    @model_validator(mode="after")
    def _media_has_link(self) -> HeaderValue:
        if self.type != "text" and self.link is None:
            raise ValueError(f"a {self.type} header needs `link`")
        return self


class TemplateSendRequest(BaseModel):
    """Send an approved WhatsApp template to the customer of a conversation."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    conversation_id: str = Field(alias="conversationId", min_length=1, max_length=64)
    template_name: str = Field(alias="templateName", min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=20, pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
    parameters: list[str | PlaceholderValue] = Field(default_factory=list, max_length=100)
    button_params: list[ButtonValue] = Field(default_factory=list, alias="buttonParams", max_length=10)
    header: HeaderValue | None = None


def _parameters(values: list[str | PlaceholderValue]) -> list[TemplateParameter]:
    return [
        TemplateParameter(text=value) if isinstance(value, str) else TemplateParameter(name=value.name, text=value.text)
        for value in values
    ]


def _template_body(request: TemplateSendRequest, to: str) -> dict[str, Any]:
    name = request.template_name.rpartition("@")[2]
    header = request.header
    media = None
    if header is not None and header.type != "text" and header.link is not None:
        media = TemplateHeaderMedia(header.type, header.link, header.filename)
    return template_send(
        recipient(to, None),
        name=name,
        language=request.language.replace("-", "_"),
        header_parameters=_parameters(header.parameters) if header is not None and media is None else [],
        header_media=media,
        body_parameters=_parameters(request.parameters),
        buttons=[TemplateButtonParameter(b.index, b.type, b.value) for b in request.button_params],
    )


async def _conversation(runtime: RuntimeDep, principal: Principal, conversation_id: str) -> Conversation:
    if not principal.is_platform_admin and not principal.tenant_id:
        raise Forbidden("this account belongs to no tenant")
    query = select(Conversation).where(
        or_(Conversation.id == conversation_id, Conversation.genesys_conversation_id == conversation_id)
    )
    if not principal.is_platform_admin:
        query = query.where(Conversation.tenant_id == principal.tenant_id)
    async with runtime.database.session() as session:
        conversation = await session.scalar(query.limit(1))
    if conversation is None or not principal.can_access_tenant(conversation.tenant_id):
        raise NotFound(f"no conversation {conversation_id} in your tenant", field="conversationId")
    return conversation


@router.post(
    "/transform/outbound/send/template",
    status_code=202,
    summary="Send an approved WhatsApp template to the customer of a conversation",
)
async def send_template(
    body: TemplateSendRequest, request: Request, runtime: RuntimeDep, principal: CurrentPrincipal
) -> JSONResponse:
    """Queue a template for the conversation's customer (templates may go outside the 24-hour window).

    The answer (202) carries our message id; the outcome is tracked on that message.
    """
    conversation = await _conversation(runtime, principal, body.conversation_id)
    tenant = await runtime.tenants.by_id(conversation.tenant_id)
    if tenant is None:
        raise NotFound("the conversation's tenant no longer exists")
    if not tenant.active:
        raise Conflict(f"tenant {tenant.id} is {tenant.status}: nothing is sent for it")
    send = _template_body(body, conversation.wa_id)
    cid = correlation_id(request)
    async with runtime.database.session() as session:
        message = Message(
            tenant_id=tenant.id,
            conversation_id=conversation.id,
            direction="outbound",
            kind="template",
            status="received",
            text=f"template {send['template']['name']} ({send['template']['language']['code']})",
            details={"requested_by": principal.user_id},
        )
        session.add(message)
        await session.flush()
        message_id = message.id
    event = WhatsAppRequest(
        tenant_id=tenant.id,
        kind="message",
        bodies=[send],
        message_id=message_id,
        customer_id=conversation.wa_id,
        customer_id_type="Opaque" if "." in conversation.wa_id else "Phone",
        accepted_at=time.time(),
        correlation_id=cid,
    )
    try:
        await runtime.broker.publish(
            SEND_WHATSAPP,
            [
                OutgoingMessage(
                    body=orjson.dumps(event.model_dump(mode="json")),
                    key=ordering_key(tenant.id, conversation.wa_id),
                    headers={"correlation_id": cid},
                )
            ],
        )
    except BrokerUnavailable as exc:
        async with runtime.database.session() as session:
            row = await session.get(Message, message_id)
            if row is not None:
                row.status, row.error = "failed", "ServerError: the broker was unavailable; nothing was sent"
        raise BackendUnavailable("cannot queue the template right now; retry later") from exc
    log.info("template.queued", tenant_id=tenant.id, message_id=message_id, template=send["template"]["name"])
    return JSONResponse(
        {"messageId": message_id, "conversationId": conversation.id, "status": "queued", "message": send},
        status_code=202,
        headers={"X-Request-Id": cid},
    )
