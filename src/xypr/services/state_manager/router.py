"""`/state`: conversation mapping, context, message tracking, media lookup and statistics, per tenant.

The tenant comes from the caller; a Xypr admin names it with `?tenantId=` (required, except for
`/state/stats`, which is platform-wide without it). Who may do what (least privilege):

| | agent | supervisor | tenant_admin, xypr_admin |
|---|---|---|---|
| read a mapping, a conversation, a context, a media; write a context | yes | yes | yes |
| list messages | of one conversation (`conversationId` or `waId`) | yes | yes |
| stats | no | yes | yes |
| write a mapping, track a message | no | no | yes |
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from xypr.auth.principal import Principal, Role, require_roles
from xypr.backends.db.base import as_utc
from xypr.core.errors import BadRequest, Conflict, Forbidden, NotFound
from xypr.services.deps import MAX_OFFSET, RuntimeDep
from xypr.services.openapi import error_responses
from xypr.services.state_manager.schemas import (
    ContextBody,
    ContextView,
    ConversationView,
    MappingRequest,
    MappingView,
    MediaView,
    MessagePage,
    MessageRequest,
    MessageStatus,
    MessageView,
    StatsView,
)
from xypr.state.context import forget_context, get_context, put_context
from xypr.state.messages import update_tracked
from xypr.state.models import Conversation, Media, Message
from xypr.state.service import (
    CUSTOMER_SERVICE_WINDOW,
    MAPPED_FIELDS,
    find_conversation,
    find_customer,
    map_customer,
    record_inbound,
    record_outbound,
    upsert_conversation,
    window_open,
)
from xypr.tenants.models import ParkedEvent, Tenant

__all__ = ["router"]

router = APIRouter(prefix="/state", tags=["state"])

# Media URLs handed to API callers live briefly: fetch now, ask again later.
MEDIA_URL_SECONDS = 900
# Statuses only move forward; `failed` is final.

_EVERY_ROLE = (Role.XYPR_ADMIN, Role.TENANT_ADMIN, Role.SUPERVISOR, Role.AGENT)
_SUPERVISORS = (Role.XYPR_ADMIN, Role.TENANT_ADMIN, Role.SUPERVISOR)
_ADMINS = (Role.XYPR_ADMIN, Role.TENANT_ADMIN)

TenantIdQuery = Annotated[
    str | None, Query(alias="tenantId", description="Xypr admins: the tenant to act on (others: their own)")
]


@dataclass(frozen=True, slots=True)
class Scope:
    """The tenant a request acts on, and who is asking."""

    tenant_id: str | None
    principal: Principal


def _scope(*roles: Role, platform_wide: bool = False) -> Callable[..., Awaitable[Scope]]:
    """A dependency admitting `roles` and resolving the tenant (None: the platform, for Xypr admins)."""
    admitted = require_roles(*roles)

    # A default, not an `Annotated` alias: string annotations cannot see this closure's `admitted`.
    async def dependency(
        runtime: RuntimeDep, tenant_id: TenantIdQuery = None, principal: Principal = Depends(admitted)
    ) -> Scope:
        if principal.is_platform_admin:
            if tenant_id is None:
                if platform_wide:
                    return Scope(None, principal)
                # Not a malformed request but one this role may not make: a Xypr admin acts on a named tenant.
                raise Forbidden("tenantId: a Xypr administrator must name the tenant to act on", field="tenantId")
            if await runtime.tenants.by_id(tenant_id) is None:
                raise NotFound(f"no tenant {tenant_id}")
            return Scope(tenant_id, principal)
        if principal.tenant_id is None or await runtime.tenants.by_id(principal.tenant_id) is None:
            raise Forbidden("this account belongs to no (longer existing) tenant")
        if tenant_id is not None and tenant_id != principal.tenant_id:
            raise Forbidden("tenantId: you may only act on your own tenant", field="tenantId")
        return Scope(principal.tenant_id, principal)

    return dependency


ReaderScope = Annotated[Scope, Depends(_scope(*_EVERY_ROLE))]
AdminScope = Annotated[Scope, Depends(_scope(*_ADMINS))]
StatsScope = Annotated[Scope, Depends(_scope(*_SUPERVISORS, platform_wide=True))]


def _tenant(scope: Scope) -> str:
    assert scope.tenant_id is not None  # only the platform-wide stats scope may be None
    return scope.tenant_id


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def _mapping(conversation: Conversation) -> MappingView:
    last = _aware(conversation.last_customer_message_at)
    return MappingView(
        conversation_id=conversation.id,
        wa_id=conversation.wa_id,
        bsuid=conversation.bsuid,
        genesys_customer_id=conversation.genesys_customer_id,
        customer_name=conversation.customer_name,
        genesys_conversation_id=conversation.genesys_conversation_id,
        last_customer_message_at=last,
        window_open=window_open(conversation, datetime.now(UTC)),
        created_at=as_utc(conversation.created_at),
        updated_at=as_utc(conversation.updated_at),
    )


async def _by_conversation(session: AsyncSession, tenant_id: str, conversation_id: str) -> Conversation | None:
    """A conversation by our id or by the Genesys conversation id, within the tenant."""
    rows = await session.scalars(
        select(Conversation)
        .where(
            Conversation.tenant_id == tenant_id,
            or_(Conversation.id == conversation_id, Conversation.genesys_conversation_id == conversation_id),
        )
        .order_by(Conversation.id != conversation_id, Conversation.updated_at.desc())
        .limit(1)
    )
    return rows.first()


@router.post(
    "/mapping",
    response_model=MappingView,
    status_code=status.HTTP_201_CREATED,
    summary="Create or update a customer ↔ conversation mapping",
    responses=error_responses(
        400, 401, 403, 404, also={200: {"model": MappingView, "description": "The mapping existed and was updated"}}
    ),
)
async def write_mapping(
    body: MappingRequest, runtime: RuntimeDep, scope: AdminScope, response: Response
) -> MappingView:
    """Map a customer (`waId`) to a conversation: 201 when new, 200 when it existed (fields given are updated)."""
    tenant_id = _tenant(scope)
    if body.phone_number_id is not None:
        tenant = await runtime.tenants.by_id(tenant_id)
        if tenant is None or tenant.wa_phone_number_id != body.phone_number_id:
            raise NotFound(f"no WhatsApp number {body.phone_number_id} in this tenant", field="phoneNumberId")
    given = body.model_fields_set | ({"customer_name"} if "contact_name" in body.model_fields_set else set())
    async with runtime.database.session() as session:
        fields = {field: getattr(body, field) for field in MAPPED_FIELDS if field in given}
        conversation, created = await map_customer(session, tenant_id=tenant_id, customer=body.wa_id, fields=fields)
        view = _mapping(conversation)
    await forget_context(
        runtime, tenant_id=tenant_id, conversation_ids=[view.conversation_id, view.genesys_conversation_id]
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return view


@router.get(
    "/mapping/{waId}",
    response_model=MappingView,
    summary="Find a customer's conversation",
    responses=error_responses(401, 403, 404),
)
async def read_mapping(
    wa_id: Annotated[str, Path(alias="waId", description="WhatsApp id (phone digits) or BSUID")],
    runtime: RuntimeDep,
    scope: ReaderScope,
) -> MappingView:
    """The conversation of a customer of the tenant."""
    async with runtime.database.session() as session:
        conversation = await find_customer(session, tenant_id=_tenant(scope), customer=wa_id)
    if conversation is None:
        raise NotFound(f"no conversation with customer {wa_id}")
    return _mapping(conversation)


@router.get(
    "/conversation/{conversationId}",
    response_model=ConversationView,
    summary="Read a conversation",
    responses=error_responses(401, 403, 404),
)
async def read_conversation(
    conversation_id: Annotated[str, Path(alias="conversationId", description="Our id or the Genesys one")],
    runtime: RuntimeDep,
    scope: ReaderScope,
) -> ConversationView:
    """A conversation by our id or the Genesys conversation id, with its message count."""
    tenant_id = _tenant(scope)
    async with runtime.database.session() as session:
        conversation = await _by_conversation(session, tenant_id, conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}")
        count, last = (
            await session.execute(
                select(func.count(), func.max(Message.created_at)).where(
                    Message.tenant_id == tenant_id, Message.conversation_id == conversation.id
                )
            )
        ).one()
    return ConversationView(
        **_mapping(conversation).model_dump(), message_count=int(count), last_message_at=_aware(last)
    )


@router.get(
    "/context/{conversationId}",
    response_model=ContextView,
    summary="Read a conversation's context",
    responses=error_responses(401, 403, 404),
)
async def read_context(
    conversation_id: Annotated[str, Path(alias="conversationId", description="Our id or the Genesys one")],
    runtime: RuntimeDep,
    scope: ReaderScope,
) -> ContextView:
    """The context: the keys tools and agents stored, plus the facts Xypr maintains (cached)."""
    context = await get_context(runtime, tenant_id=_tenant(scope), conversation_id=conversation_id)
    if context is None:
        raise NotFound(f"no conversation {conversation_id}")
    return ContextView(conversation_id=str(context["conversation_id"]), context=context)


@router.put(
    "/context/{conversationId}",
    response_model=ContextView,
    summary="Replace a conversation's context",
    responses=error_responses(400, 401, 403, 404, 413),
)
async def write_context(
    conversation_id: Annotated[str, Path(alias="conversationId", description="Our id or the Genesys one")],
    body: ContextBody,
    runtime: RuntimeDep,
    scope: ReaderScope,
) -> ContextView:
    """Replace the writable keys (Xypr's own facts are kept); at most 64 KiB of JSON."""
    context = await put_context(
        runtime, tenant_id=_tenant(scope), conversation_id=conversation_id, context=body.context
    )
    return ContextView(conversation_id=str(context["conversation_id"]), context=context)


@router.post(
    "/message",
    response_model=MessageView,
    status_code=status.HTTP_201_CREATED,
    summary="Track a message",
    responses=error_responses(
        400, 401, 403, 404, 409, also={200: {"model": MessageView, "description": "Tracked already; updated"}}
    ),
)
async def track_message(
    body: MessageRequest, runtime: RuntimeDep, scope: AdminScope, response: Response
) -> MessageView:
    """Track a message once: inbound by `wamid`, outbound by `genesysMessageId` (201 new, 200 updated).

    A known message's status only moves forward and `failed` is final; `text`, `error` and the other
    side's id are filled in when given.
    """
    tenant_id = _tenant(scope)
    if body.direction == "inbound" and not body.wamid:
        raise BadRequest("wamid: required for an inbound message", field="wamid")
    if body.direction == "outbound" and not body.genesys_message_id:
        raise BadRequest("genesysMessageId: required for an outbound message", field="genesysMessageId")
    if body.wa_id is None and body.conversation_id is None:
        raise BadRequest("waId or conversationId: name the conversation", field="waId")
    try:
        async with runtime.database.session() as session:
            wa_id = body.wa_id
            known: Conversation | None = None
            if wa_id is None:
                assert body.conversation_id is not None
                known = await _by_conversation(session, tenant_id, body.conversation_id)
                if known is None:
                    raise NotFound(f"no conversation {body.conversation_id}", field="conversationId")
                wa_id = known.wa_id
            if body.direction == "inbound":
                assert body.wamid is not None
                conversation = await upsert_conversation(session, tenant_id=tenant_id, wa_id=wa_id)
                record = await record_inbound(
                    session, conversation=conversation, wamid=body.wamid, kind=body.kind, text=body.text
                )
                message, created = record.message, record.created
            else:
                assert body.genesys_message_id is not None
                if known is None:
                    known = await find_conversation(session, tenant_id=tenant_id, wa_id=wa_id)
                outbound = await record_outbound(
                    session,
                    tenant_id=tenant_id,
                    genesys_message_id=body.genesys_message_id,
                    conversation_id=known.id if known else None,
                    kind=body.kind,
                    text=body.text,
                )
                message, created = outbound.message, outbound.created
            update_tracked(
                message,
                created=created,
                status=body.status,
                text=body.text,
                error=body.error,
                wamid=body.wamid,
                genesys_message_id=body.genesys_message_id,
            )
            await session.flush()
            await session.refresh(message)
            view = MessageView.model_validate(message, from_attributes=True)
    except IntegrityError as exc:
        raise Conflict("another tracked message already has this wamid or genesysMessageId") from exc
    if not created:
        response.status_code = status.HTTP_200_OK
    return view


@router.get(
    "/messages",
    response_model=MessagePage,
    summary="List tracked messages",
    responses=error_responses(400, 401, 403, 404),
)
async def list_messages(
    runtime: RuntimeDep,
    scope: ReaderScope,
    conversation_id: Annotated[
        str | None, Query(alias="conversationId", description="Our conversation id or the Genesys one")
    ] = None,
    wa_id: Annotated[str | None, Query(alias="waId", description="The customer's WhatsApp id or BSUID")] = None,
    status_: Annotated[MessageStatus | None, Query(alias="status", description="Only messages in this status")] = None,
    direction: Annotated[
        Literal["inbound", "outbound"] | None, Query(description="inbound (customer → agent) or outbound")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> MessagePage:
    """Tracked messages of the tenant, newest first, filtered; agents must name one conversation."""
    tenant_id = _tenant(scope)
    if scope.principal.role is Role.AGENT and not (conversation_id or wa_id):
        raise Forbidden("agents list the messages of one conversation: give conversationId or waId")
    query = select(Message).where(Message.tenant_id == tenant_id)
    async with runtime.database.session() as session:
        conversations = [
            await _by_conversation(session, tenant_id, conversation_id) if conversation_id is not None else None,
            await find_customer(session, tenant_id=tenant_id, customer=wa_id) if wa_id is not None else None,
        ]
        for wanted, found in zip((conversation_id, wa_id), conversations, strict=True):
            if wanted is not None and found is None:
                return MessagePage(items=[], total=0, limit=limit, offset=offset)
            if found is not None:
                query = query.where(Message.conversation_id == found.id)
        if status_ is not None:
            query = query.where(Message.status == status_)
        if direction is not None:
            query = query.where(Message.direction == direction)
        total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = await session.scalars(
            query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit).offset(offset)
        )
        items = [MessageView.model_validate(row, from_attributes=True) for row in rows]
    return MessagePage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/media/{mediaId}",
    response_model=MediaView,
    summary="Find our copy of a WhatsApp media",
    responses=error_responses(401, 403, 404),
)
async def read_media(
    media_id: Annotated[str, Path(alias="mediaId", description="The WhatsApp media id of a customer's media")],
    runtime: RuntimeDep,
    scope: ReaderScope,
) -> MediaView:
    """The WhatsApp media id's copy in our object store, with a short-lived URL to fetch it."""
    async with runtime.database.session() as session:
        media = await session.scalar(select(Media).where(Media.tenant_id == _tenant(scope), Media.media_id == media_id))
    if media is None:
        raise NotFound(f"no media {media_id}")
    return MediaView(
        media_id=media.media_id,
        wamid=media.wamid,
        mime_type=media.mime_type,
        sha256=media.sha256,
        size=media.size,
        filename=media.filename,
        created_at=as_utc(media.created_at),
        url=await runtime.store.url(media.object_key, expires_in=MEDIA_URL_SECONDS),
        url_expires_in=MEDIA_URL_SECONDS,
    )


@router.get(
    "/stats",
    response_model=StatsView,
    summary="Statistics of a tenant (or of the platform)",
    responses=error_responses(401, 403, 404),
)
async def stats(runtime: RuntimeDep, scope: StatsScope) -> StatsView:
    """Conversations, messages by direction and status, the last 24 h, media and parked events.

    Per tenant; a Xypr admin without `tenantId` gets the whole platform, with tenants by status.
    """
    tenant_id = scope.tenant_id

    def mine(column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        return column == tenant_id if tenant_id is not None else true()

    since = datetime.now(UTC) - CUSTOMER_SERVICE_WINDOW
    async with runtime.database.session() as session:
        conversations = await session.scalar(
            select(func.count()).select_from(Conversation).where(mine(Conversation.tenant_id))
        )
        by_status = await session.execute(
            select(Message.direction, Message.status, func.count())
            .where(mine(Message.tenant_id))
            .group_by(Message.direction, Message.status)
        )
        recent = await session.execute(
            select(Message.direction, func.count())
            .where(mine(Message.tenant_id), Message.created_at >= since)
            .group_by(Message.direction)
        )
        media = await session.scalar(select(func.count()).select_from(Media).where(mine(Media.tenant_id)))
        parked = await session.scalar(select(func.count()).select_from(ParkedEvent).where(mine(ParkedEvent.tenant_id)))
        tenants = None
        if tenant_id is None:
            rows = await session.execute(select(Tenant.status, func.count()).group_by(Tenant.status))
            tenants = {str(name): int(count) for name, count in rows.all()}
        messages: dict[str, dict[str, int]] = {"inbound": {}, "outbound": {}}
        for direction, message_status, count in by_status.all():
            messages.setdefault(direction, {})[message_status] = int(count)
        last24h = {"inbound": 0, "outbound": 0}
        last24h.update({direction: int(count) for direction, count in recent.all()})
    return StatsView(
        scope="platform" if tenant_id is None else "tenant",
        tenant_id=tenant_id,
        conversations=int(conversations or 0),
        messages=messages,
        messages_last_day=last24h,
        media=int(media or 0),
        parked_events=int(parked or 0),
        tenants=tenants,
    )
