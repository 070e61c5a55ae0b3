"""outbound-transformer HTTP: the pure Genesys → WhatsApp transform for tools, and sending a template."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import (
    AliasChoices,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from sqlalchemy import or_, select

from xypr.auth.principal import CurrentPrincipal, Principal
from xypr.core.apimodel import ApiModel, integral, variants
from xypr.core.errors import Conflict, Forbidden, NotFound
from xypr.core.logging import get_logger
from xypr.genesys.content import TemplateParameter
from xypr.genesys.models import GenesysOutbound
from xypr.services.deps import RuntimeDep, correlation_id
from xypr.services.openapi import error_responses
from xypr.services.whatsapp_sends import queue_whatsapp
from xypr.state.details import MessageDetails
from xypr.state.models import Conversation
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
    "TEMPLATE_LANGUAGE_SETTING",
    "ButtonValue",
    "HeaderValue",
    "MediaToFetch",
    "OutboundTransform",
    "PlaceholderValue",
    "TemplateQueued",
    "TemplateSendRequest",
    "TransformFailure",
    "TransformRequest",
    "router",
]

log = get_logger(__name__)
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*")
router = APIRouter(tags=["outbound transform"])

# The tenant setting naming the language of templates sent without `language` (a WhatsApp language code).
TEMPLATE_LANGUAGE_SETTING = "template_language"
DEFAULT_TEMPLATE_LANGUAGE = "en_US"


class TransformRequest(GenesysOutbound):
    """A Genesys outbound message as the webhook carries it, plus whom to address and, for events, which message."""

    to: str | None = Field(default=None, min_length=1, max_length=64, description="default: channel.to.id")
    to_id_type: Literal["Phone", "Opaque", "Email"] | None = Field(default=None, alias="toIdType")
    wamid: str | None = Field(
        default=None, max_length=200, description="the customer's message a typing indicator or read receipt is for"
    )


class MediaToFetch(ApiModel):
    """An attachment Xypr would fetch from Genesys and upload to Meta before sending message `part`."""

    part: int = Field(description="Index in `messages` of the body that gets the uploaded media's id")
    url: str
    mime_type: str | None
    type: str = Field(description="WhatsApp message type: image, audio, video, document or sticker")
    max_bytes: int = Field(description="WhatsApp's size limit for this type")
    filename: str | None


class TransformFailure(ApiModel):
    """Why a Genesys message has no WhatsApp form: the Open Messaging receipt reason, and the details."""

    reason: str = Field(description="The Open Messaging receipt reason code, e.g. UnsupportedMessage")
    message: str


class OutboundTransform(ApiModel):
    """What a Genesys message becomes: the Graph API `/messages` bodies, in the order they would be sent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "messages": [
                        {
                            "messaging_product": "whatsapp",
                            "recipient_type": "individual",
                            "to": "16505551234",
                            "type": "text",
                            "text": {"body": "Hello! How can I help?", "preview_url": False},
                        }
                    ],
                    "quickReplies": [],
                    "media": [],
                    "template": False,
                }
            ]
        }
    )

    messages: list[dict[str, Any]] = Field(description="WhatsApp Graph API bodies (Meta's own wire format)")
    quick_replies: list[dict[str, str]] = Field(description="The quick replies offered, as the customer will see them")
    media: list[MediaToFetch]
    template: bool = Field(description="A template message (may go outside the 24-hour window)")
    failed: TransformFailure | None = Field(
        default=None,
        description="The message has no WhatsApp form: nothing would be sent, and the agent would get a "
        "`Failed` receipt with this reason",
    )


_TRANSFORM_EXAMPLE = {
    "id": "2d5b4fd4-c6e0-4a40-92b1-bf6ff0d2d6c5",
    "channel": {
        "id": "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11",
        "platform": "Open",
        "type": "Private",
        "to": {"id": "16505551234", "idType": "Phone"},
        "from": {"id": "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11"},
        "time": "2026-11-22T10:00:00.000Z",
        "messageId": "2d5b4fd4-c6e0-4a40-92b1-bf6ff0d2d6c5",
    },
    "type": "Text",
    "text": "Hello! How can I help?",
    "direction": "Outbound",
}


def _failed(reason: str, message: str) -> OutboundTransform:
    return OutboundTransform(
        messages=[], quick_replies=[], media=[], template=False, failed=TransformFailure(reason=reason, message=message)
    )


@router.post(
    "/transform/outbound",
    summary="Genesys outbound message → WhatsApp Graph API bodies (no side effects)",
    response_model=OutboundTransform,
    responses=error_responses(400, 401, 403, 413),
    openapi_extra={
        "requestBody": {"content": {"application/json": {"examples": {"text": {"value": _TRANSFORM_EXAMPLE}}}}}
    },
)
async def transform_outbound(request: TransformRequest, _principal: CurrentPrincipal) -> OutboundTransform:
    """The Graph `/messages` bodies a Genesys message becomes, in order; nothing is sent or stored.

    An attachment's body lacks its media `id`: `media` says which URL is fetched and uploaded first.
    A message WhatsApp cannot take answers no bodies and `failed`: the reason of the `Failed` receipt
    the agent would get (a well-formed request, so still 200).
    """
    to = request.to or request.channel.to.id
    # A given `to` is addressed by its own shape unless `toIdType` says otherwise.
    id_type = request.to_id_type or (None if request.to else request.channel.to.id_type)
    if request.type in ("Event", "Receipt"):
        if not request.wamid:
            return _failed(
                "InvalidMessageStructure", f"a {request.type} needs `wamid`, the customer's message it refers to"
            )
        body = typing_indicator(request.wamid) if request.type == "Event" else mark_read(request.wamid)
        return OutboundTransform(messages=[body], quick_replies=[], media=[], template=False)
    try:
        plan = plan_outbound(request, to=to, id_type=id_type)
    except UnsupportedOutbound as exc:
        return _failed(exc.reason, str(exc))
    media = []
    if plan.attachment is not None:
        source = plan.attachment
        media.append(
            MediaToFetch(
                part=source.part,
                url=source.url,
                mime_type=source.mime_type,
                type=source.whatsapp_type,
                max_bytes=source.max_bytes,
                filename=source.filename,
            )
        )
    return OutboundTransform(
        messages=plan.sends,
        quick_replies=[choice.as_dict() for choice in plan.quick_replies],
        media=media,
        template=plan.is_template,
    )


class PlaceholderValue(ApiModel):
    """A placeholder value; `name` only for templates with named placeholders."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    text: str = Field(min_length=1, max_length=1024)


class ButtonValue(ApiModel):
    """A button's value: a quick reply's payload, or the dynamic part of a URL button."""

    model_config = ConfigDict(extra="forbid")

    index: Annotated[int, BeforeValidator(integral)] = Field(ge=0, le=9)
    type: Literal["quick_reply", "url"] = Field(
        default="quick_reply", validation_alias=AliasChoices("type", "subType", "sub_type")
    )
    value: str = Field(min_length=1, max_length=2000, validation_alias=AliasChoices("value", "payload", "text"))


class HeaderValue(ApiModel):
    """The header's value: text parameters, or a media link (https)."""

    # A media header needs its link; a text header does not.
    model_config = ConfigDict(
        json_schema_extra=variants(({"type": ["text"]}, ()), ({"type": ["image", "video", "document"]}, ("link",)))
    )

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "image", "video", "document"] = "text"
    parameters: list[str | PlaceholderValue] = Field(default_factory=list, max_length=10)
    link: str | None = Field(default=None, max_length=2000, pattern=r"^https://")
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


UrlButtonParameter = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
ButtonValues = Annotated[list[ButtonValue], Field(max_length=10)]


def _url_button(value: Any) -> Any:
    """The setup guide's form: a lone string is the parameter of the template's URL button (button 0)."""
    return [{"index": 0, "type": "url", "value": value}] if isinstance(value, str) else value


class TemplateSendRequest(ApiModel):
    """Send an approved WhatsApp template to the customer of a conversation.

    `language` defaults to the tenant's `settings.template_language` (else en_US). `buttonParams` is a
    list of button values, or — as in the setup guide — one string: the parameter of the template's URL
    button (button 0).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "conversationId": "a8f3c2a4-3c1b-4c4e-8a0e-2b1f0e7d9c11",
                    "templateName": "order_update",
                    "parameters": ["Sheena", "A-1042"],
                    "buttonParams": "https://shop.example.com/orders/A-1042",
                },
                {
                    "conversationId": "a8f3c2a4-3c1b-4c4e-8a0e-2b1f0e7d9c11",
                    "templateName": "appointment_reminder",
                    "language": "es",
                    "parameters": [{"name": "day", "text": "martes"}],
                    "buttonParams": [{"index": 0, "type": "quick_reply", "value": "CONFIRM"}],
                    "header": {"type": "image", "link": "https://cdn.example.com/clinic.jpg"},
                },
            ]
        },
    )

    conversation_id: str = Field(min_length=1, max_length=64, description="Our conversation id or the Genesys one")
    template_name: str = Field(min_length=1, max_length=512, description="The approved template's name")
    language: str | None = Field(
        default=None,
        min_length=2,
        max_length=20,
        pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$",
        description="WhatsApp language code (default: the tenant's settings.template_language, else en_US)",
    )
    parameters: list[str | PlaceholderValue] = Field(default_factory=list, max_length=100)
    button_params: Annotated[
        ButtonValues, BeforeValidator(_url_button, json_schema_input_type=ButtonValues | UrlButtonParameter)
    ] = Field(
        default_factory=list,
        description="Button values, or one string: the parameter of the URL button (button 0)",
    )
    header: HeaderValue | None = None


class TemplateQueued(ApiModel):
    """A template accepted for sending: our message id (its outcome is tracked there) and the Graph body."""

    message_id: str
    conversation_id: str
    status: Literal["queued"]
    message: dict[str, Any] = Field(description="The WhatsApp Graph API body that will be sent (Meta's wire format)")


def _parameters(values: list[str | PlaceholderValue]) -> list[TemplateParameter]:
    return [
        TemplateParameter(text=value) if isinstance(value, str) else TemplateParameter(name=value.name, text=value.text)
        for value in values
    ]


def _template_body(request: TemplateSendRequest, to: str, language: str) -> dict[str, Any]:
    name = request.template_name.rpartition("@")[2]
    header = request.header
    media = None
    if header is not None and header.type != "text" and header.link is not None:
        media = TemplateHeaderMedia(header.type, header.link, header.filename)
    return template_send(
        recipient(to, None),
        name=name,
        language=language.replace("-", "_"),
        header_parameters=_parameters(header.parameters) if header is not None and media is None else [],
        header_media=media,
        body_parameters=_parameters(request.parameters),
        buttons=[TemplateButtonParameter(b.index, b.type, b.value) for b in request.button_params],
    )


def _default_language(settings: dict[str, Any]) -> str:
    """The tenant's default template language; a malformed setting is the tenant's error, said as such."""
    configured = settings.get(TEMPLATE_LANGUAGE_SETTING)
    if configured is None:
        return DEFAULT_TEMPLATE_LANGUAGE
    if not isinstance(configured, str) or not _LANGUAGE.fullmatch(configured):
        raise Conflict(
            f"the tenant's settings.{TEMPLATE_LANGUAGE_SETTING} ({configured!r}) is not a WhatsApp language code; "
            "give `language` or fix the setting"
        )
    return configured


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
    response_model=TemplateQueued,
    summary="Send an approved WhatsApp template to the customer of a conversation",
    responses=error_responses(400, 401, 403, 404, 409, 413, 503),
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
    language = body.language or _default_language(tenant.settings)
    send = _template_body(body, conversation.wa_id, language)
    cid = correlation_id(request)
    message_id = await queue_whatsapp(
        runtime,
        tenant,
        conversation,
        kind="template",
        text=f"template {send['template']['name']} ({send['template']['language']['code']})",
        payload=send,
        details=MessageDetails(requested_by=principal.user_id),
        correlation_id=cid,
    )
    log.info("template.queued", tenant_id=tenant.id, message_id=message_id, template=send["template"]["name"])
    queued = TemplateQueued(message_id=message_id, conversation_id=conversation.id, status="queued", message=send)
    return JSONResponse(queued.model_dump(mode="json"), status_code=202, headers={"X-Request-Id": cid})
