"""The emulated Genesys Cloud API: `/oauth/token` and the Open Messaging inbound endpoints."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from xypr.sandbox.genesys.deps import SandboxDep
from xypr.sandbox.genesys.errors import (
    authentication_required,
    bad_credentials,
    bad_request,
    injected,
    not_authorized,
    not_found,
)
from xypr.sandbox.genesys.login import code_grant
from xypr.sandbox.genesys.state import GenesysSandbox, Integration, ReceivedRecord
from xypr.sandbox.genesys.webhooks import genesys_time, new_message_id
from xypr.sandbox.genesys.wire import InboundEvent, InboundMessage, InboundReceipt, InboundStructuredResponse

__all__ = ["router"]

router = APIRouter()

_M = TypeVar("_M", bound=BaseModel)

_INBOUND = "/api/v2/conversations/messages/{integration_id}/inbound/open"


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "description": description, "error_description": description}, status_code=status
    )


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (client_id, secret) if sep else None


@router.post("/oauth/token")
async def oauth_token(request: Request, sandbox: SandboxDep) -> JSONResponse:
    """Client credentials (`Authorization: Basic`, form `grant_type=client_credentials`), or a user's
    authorization code with its PKCE verifier (`grant_type=authorization_code`)."""
    credentials = _basic_credentials(request.headers.get("authorization", ""))
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        code_form = parse_qs((await request.body()).decode(errors="replace"))
        if code_form.get("grant_type", [""])[0] == "authorization_code":
            return code_grant(code_form, credentials, sandbox)
    if credentials is None or not sandbox.authenticate_client(*credentials):
        return _oauth_error(401, "invalid_client", "client not found")
    form: dict[str, list[str]] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = parse_qs((await request.body()).decode(errors="replace"))
    grant_type = form.get("grant_type", [""])[0]
    if not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is required (form-encoded body)")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", f"grant type {grant_type} is not supported")
    access = sandbox.issue_token(credentials[0])
    return JSONResponse({"access_token": access.token, "token_type": "bearer", "expires_in": sandbox.token_ttl})


def _authorize(request: Request, sandbox: GenesysSandbox, integration_id: str) -> Integration:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise authentication_required()
    client_id = sandbox.token_client(token.strip())
    if client_id is None:
        raise bad_credentials()
    integration = sandbox.integrations.get(integration_id)
    if integration is None:
        raise not_found(f"Open messaging integration {integration_id}")
    if not sandbox.client_may_use(client_id, integration):
        raise not_authorized()
    fault = sandbox.take_fault(integration_id)
    if fault is not None:
        raise injected(fault.status, fault.retry_after)
    return integration


def _field(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


async def _validated(request: Request, model: type[_M]) -> tuple[dict[str, Any], _M]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise bad_request("body", "malformed JSON") from exc
    if not isinstance(body, dict):
        raise bad_request("body", "must be a JSON object")
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise bad_request(_field(first["loc"]), first["msg"].removeprefix("Value error, ")) from exc
    return body, parsed


def _channel_echo(integration_id: str, channel: dict[str, Any]) -> dict[str, Any]:
    echo: dict[str, Any] = {"id": integration_id, "platform": "Open", "type": "Private"}
    if "messageId" in channel:
        echo["messageId"] = channel["messageId"]
    echo["to"] = channel.get("to", {"id": integration_id})
    if "from" in channel:
        echo["from"] = channel["from"]
    echo["time"] = channel["time"]
    return echo


async def _record(
    sandbox: GenesysSandbox,
    kind: str,
    integration_id: str,
    customer_id: str,
    body: dict[str, Any],
    response: dict[str, Any],
    conversation_id: str | None,
    matched_outbound: bool | None = None,
) -> JSONResponse:
    sandbox.record_received(
        ReceivedRecord(
            kind,
            integration_id,
            str(response["id"]),
            customer_id,
            conversation_id,
            body,
            response,
            genesys_time(),
            matched_outbound,
        )
    )
    if sandbox.answer_delay_seconds:
        # Accepted (recorded) first, answered late: a slow Genesys, or a network slow on the way back.
        await asyncio.sleep(sandbox.answer_delay_seconds)
    return JSONResponse(response)


@router.post(_INBOUND + "/message")
async def inbound_message(integration_id: str, request: Request, sandbox: SandboxDep) -> JSONResponse:
    """A customer message; `?prefetchConversationId=true` answers its `conversationId`."""
    _authorize(request, sandbox, integration_id)
    body, _ = await _validated(request, InboundMessage)
    channel = body["channel"]
    customer_id = channel["from"]["id"]
    conversation_id = sandbox.conversation_for(integration_id, customer_id)
    response: dict[str, Any] = {"id": new_message_id(), "channel": _channel_echo(integration_id, channel)}
    response["type"] = "Text"
    for key in ("text", "content", "metadata"):
        if body.get(key) is not None:
            response[key] = body[key]
    response["direction"] = "Inbound"
    if request.query_params.get("prefetchConversationId", "").lower() == "true":
        response["conversationId"] = conversation_id
    return await _record(sandbox, "message", integration_id, customer_id, body, response, conversation_id)


@router.post(_INBOUND + "/receipt")
async def inbound_receipt(integration_id: str, request: Request, sandbox: SandboxDep) -> JSONResponse:
    """Delivery (or failure) of an outbound message, by its Genesys id."""
    _authorize(request, sandbox, integration_id)
    body, receipt = await _validated(request, InboundReceipt)
    customer_id = receipt.channel.to.id
    response: dict[str, Any] = {
        "id": receipt.id,
        "channel": _channel_echo(integration_id, body["channel"]),
        "type": "Receipt",
        "status": receipt.status,
    }
    if body.get("reasons") is not None:
        response["reasons"] = body["reasons"]
    if receipt.isFinalReceipt is not None:
        response["isFinalReceipt"] = receipt.isFinalReceipt
    response["direction"] = "Inbound"
    matched = sandbox.is_outbound_id(integration_id, receipt.id)
    conversation_id = sandbox.conversations.get((integration_id, customer_id))
    return await _record(sandbox, "receipt", integration_id, customer_id, body, response, conversation_id, matched)


@router.post(_INBOUND + "/event")
async def inbound_event(integration_id: str, request: Request, sandbox: SandboxDep) -> JSONResponse:
    """A customer event (typing)."""
    _authorize(request, sandbox, integration_id)
    body, event = await _validated(request, InboundEvent)
    customer_id = event.channel.from_.id
    response = {
        "id": new_message_id(),
        "channel": _channel_echo(integration_id, body["channel"]),
        "type": "Event",
        "events": body["events"],
        "direction": "Inbound",
    }
    conversation_id = sandbox.conversations.get((integration_id, customer_id))
    return await _record(sandbox, "event", integration_id, customer_id, body, response, conversation_id)


@router.post(_INBOUND + "/structured/response")
async def inbound_structured_response(integration_id: str, request: Request, sandbox: SandboxDep) -> JSONResponse:
    """A customer's answer to buttons / quick replies."""
    _authorize(request, sandbox, integration_id)
    body, structured = await _validated(request, InboundStructuredResponse)
    customer_id = structured.channel.from_.id
    response: dict[str, Any] = {
        "id": new_message_id(),
        "channel": _channel_echo(integration_id, body["channel"]),
        "type": "Structured",
        "content": body["content"],
        "direction": "Inbound",
    }
    if structured.originatingMessageId is not None:
        response["originatingMessageId"] = structured.originatingMessageId
    conversation_id = sandbox.conversation_for(integration_id, customer_id)
    return await _record(sandbox, "structured", integration_id, customer_id, body, response, conversation_id)
