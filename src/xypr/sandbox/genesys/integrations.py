"""The emulated Open Messaging integration management API (create, read) and standalone OAuth clients.

`POST /api/v2/conversations/messaging/integrations/open` answers the new integration with
`createStatus: Initiated`; it turns `Completed` a moment later (`integration_create_seconds`), as
Genesys creates integrations asynchronously. An organisation sees only its own integrations: another
organisation's id answers 404. Deviation for local use: an `http://` webhook URL is accepted for a
loopback host (Genesys itself requires https on port 443).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from xypr.sandbox.genesys.deps import SandboxDep
from xypr.sandbox.genesys.errors import authentication_required, bad_credentials, bad_request, not_found
from xypr.sandbox.genesys.state import GenesysSandbox, Integration, ServiceClient

__all__ = ["control_router", "router"]

router = APIRouter()
control_router = APIRouter(prefix="/_sandbox", tags=["genesys sandbox"])

_OPEN = "/api/v2/conversations/messaging/integrations/open"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ServiceClientRegistration(BaseModel):
    """Register (upsert) a client-credentials OAuth client of an organisation."""

    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    org_id: str = Field(min_length=1)


@control_router.post("/clients")
async def register_client(registration: ServiceClientRegistration, sandbox: SandboxDep) -> dict[str, Any]:
    """An OAuth client that can fetch tokens (and create integrations) before any integration exists."""
    sandbox.service_clients[registration.client_id] = ServiceClient(**registration.model_dump())
    return {"client_id": registration.client_id, "org_id": registration.org_id, "registered": True}


def _caller(request: Request, sandbox: GenesysSandbox) -> str:
    """The client id behind the bearer token (401 otherwise)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise authentication_required()
    client_id = sandbox.token_client(token.strip())
    if client_id is None:
        raise bad_credentials()
    return client_id


def _entity(integration: Integration) -> dict[str, Any]:
    """The integration as Genesys' `OpenIntegration` (the signature secret is never echoed)."""
    entity: dict[str, Any] = {
        "id": integration.integration_id,
        "name": integration.name,
        "supportedContent": {
            "id": "00000000-0000-4000-8000-00000000c0de",
            "name": "Default content profile",
            "selfUri": "/api/v2/conversations/messaging/supportedcontent/00000000-0000-4000-8000-00000000c0de",
        },
        "outboundNotificationWebhookUrl": integration.webhook_url,
        "webhookHeaders": {},
        "status": "Active",
        "recipient": {
            "id": integration.integration_id,
            "selfUri": f"/api/v2/routing/message/recipients/{integration.integration_id}",
        },
        "dateCreated": integration.date_created or None,
        "createStatus": integration.current_create_status(),
        "selfUri": f"{_OPEN}/{integration.integration_id}",
    }
    return {key: value for key, value in entity.items() if value is not None}


def _webhook_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname and parts.port in (None, 443):
        return None
    if parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK:
        return None  # the sandbox runs on plain http on this machine
    return "must be an https URL on port 443"


@router.post(_OPEN)
async def create_open_integration(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """Create an Open Messaging integration (permission `messaging:integration:add`)."""
    client_id = _caller(request, sandbox)
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise bad_request("body", "malformed JSON") from exc
    if not isinstance(body, dict):
        raise bad_request("body", "must be a JSON object")
    name = body.get("name")
    url = body.get("outboundNotificationWebhookUrl")
    secret = body.get("outboundNotificationWebhookSignatureSecretToken")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name", "is required")
    if not isinstance(url, str):
        raise bad_request("outboundNotificationWebhookUrl", "is required")
    if (problem := _webhook_url_problem(url)) is not None:
        raise bad_request("outboundNotificationWebhookUrl", problem)
    if not isinstance(secret, str) or len(secret) <= 15:
        raise bad_request("outboundNotificationWebhookSignatureSecretToken", "must be longer than 15 characters")
    integration = sandbox.create_integration(client_id, name=name.strip(), webhook_url=url, webhook_secret=secret)
    return _entity(integration)


@router.get(_OPEN + "/{integration_id}")
async def get_open_integration(integration_id: str, request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """Read an Open Messaging integration of the caller's organisation."""
    client_id = _caller(request, sandbox)
    integration = sandbox.integrations.get(integration_id)
    if integration is None or not sandbox.client_may_use(client_id, integration):
        raise not_found(f"Open messaging integration {integration_id}")
    return _entity(integration)
