"""`/tenants/{id}/…` operations: Genesys token status and forced refresh, WhatsApp number, webhook helper.

Readers: Xypr admins (any tenant), the tenant's tenant_admin and supervisor. Changes (token refresh,
verification test): Xypr admins and the tenant's tenant_admin. Another tenant's id answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from xypr.auth.principal import CurrentPrincipal
from xypr.services.admin_dashboard.schemas import (
    GenesysTokenView,
    VerificationView,
    WebhookHelpView,
    WhatsAppNumberView,
)
from xypr.services.deps import RuntimeDep
from xypr.services.openapi import error_responses
from xypr.services.tenant.operations import (
    check_webhook_verification,
    genesys_token_status,
    refresh_genesys_token,
    webhook_help,
    whatsapp_number_status,
)

__all__ = ["router"]

router = APIRouter(prefix="/tenants", tags=["tenants"])
TenantIdPath = Annotated[str, Path(alias="tenantId")]


@router.get("/{tenantId}/genesys-token", response_model=GenesysTokenView, summary="Genesys token status",
            responses=error_responses(401, 403, 404))  # fmt: skip
async def token_status(tenant_id: TenantIdPath, runtime: RuntimeDep, principal: CurrentPrincipal) -> GenesysTokenView:
    """Whether a client-credentials token is cached, when it was fetched, when it expires, and the last error
    Genesys answered when asked for one (the troubleshooting step of the setup guide)."""
    return GenesysTokenView.of(await genesys_token_status(runtime, principal, tenant_id))


@router.post("/{tenantId}/genesys-token/refresh", response_model=GenesysTokenView, summary="Refresh the Genesys "
             "token now", responses=error_responses(401, 403, 404, 409))  # fmt: skip
async def token_refresh(tenant_id: TenantIdPath, runtime: RuntimeDep, principal: CurrentPrincipal) -> GenesysTokenView:
    """Fetch a new token now, shared by every process; 409 `genesys_token_refresh_failed` with Genesys' answer
    when it refuses (the error is also kept in the status). Audited."""
    return GenesysTokenView.of(await refresh_genesys_token(runtime, principal, tenant_id))


@router.get("/{tenantId}/whatsapp-number", response_model=WhatsAppNumberView, summary="WhatsApp number status",
            responses=error_responses(401, 403, 404))  # fmt: skip
async def number_status(
    tenant_id: TenantIdPath, runtime: RuntimeDep, principal: CurrentPrincipal
) -> WhatsAppNumberView:
    """Asks Meta about the number with the stored token: token validity, throughput level, quality rating."""
    return WhatsAppNumberView.of(await whatsapp_number_status(runtime, principal, tenant_id))


@router.get("/{tenantId}/webhooks", response_model=WebhookHelpView, summary="Webhook helper",
            responses=error_responses(401, 403, 404))  # fmt: skip
async def webhooks(tenant_id: TenantIdPath, runtime: RuntimeDep, principal: CurrentPrincipal) -> WebhookHelpView:
    """The two webhook URLs to configure in Meta and Genesys, the verify token masked, and the time of the last
    signed webhook received from each."""
    return WebhookHelpView.of(await webhook_help(runtime, principal, tenant_id))


@router.post("/{tenantId}/webhooks/verify", response_model=VerificationView, summary="Test the webhook "
             "verification", responses=error_responses(401, 403, 404, 503))  # fmt: skip
async def verify(tenant_id: TenantIdPath, runtime: RuntimeDep, principal: CurrentPrincipal) -> VerificationView:
    """Plays Meta's handshake (`hub.mode=subscribe`, the tenant's verify token, a random challenge) against
    `XYPR_PUBLIC_URL/webhook/whatsapp`; `ok` when the challenge comes back."""
    return VerificationView.of(await check_webhook_verification(runtime, principal, tenant_id))
