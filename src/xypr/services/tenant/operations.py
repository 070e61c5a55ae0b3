"""What an operator checks on a running tenant: its Genesys token, its WhatsApp number, its webhooks.

Each function takes the caller and answers 404 for a tenant outside their scope, like the tenant API.
Nothing returned ever holds a secret: tokens are described (times, errors), the verify token is masked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from xypr.audit.service import record_audit
from xypr.auth.principal import Principal, Role
from xypr.core.errors import Forbidden, NotFound, ServiceUnavailable, XyprError
from xypr.genesys.client import TokenStatus
from xypr.monitoring.webhooks import last_webhooks
from xypr.runtime import Runtime
from xypr.tenants.service import TenantRuntime, get_tenant, open_tenant

__all__ = [
    "NumberStatus",
    "VerificationResult",
    "WebhookHelp",
    "check_webhook_verification",
    "genesys_token_status",
    "mask",
    "refresh_genesys_token",
    "tenant_in_scope",
    "webhook_help",
    "whatsapp_number_status",
]

_READERS = (Role.XYPR_ADMIN, Role.TENANT_ADMIN, Role.SUPERVISOR)
_CHANGERS = (Role.XYPR_ADMIN, Role.TENANT_ADMIN)


def mask(secret: str) -> str:
    """A secret as a page may show it: dots and its length, none of its characters."""
    return f"{'•' * 8} ({len(secret)} characters)"


async def tenant_in_scope(
    runtime: Runtime, principal: Principal, tenant_id: str, *, roles: tuple[Role, ...] = _READERS
) -> TenantRuntime:
    """The tenant with its secrets opened, when the caller may act on it (404 / 403 otherwise)."""
    if not principal.can_access_tenant(tenant_id):
        raise NotFound(f"no tenant {tenant_id}")
    if principal.role not in roles:
        raise Forbidden(f"this needs one of the roles: {', '.join(sorted(r.value for r in roles))}")
    return open_tenant(runtime.box, await get_tenant(runtime.database, tenant_id))


async def genesys_token_status(runtime: Runtime, principal: Principal, tenant_id: str) -> TokenStatus:
    """The tenant's Genesys token: cached or not, fetched when, expiring when, the last error."""
    tenant = await tenant_in_scope(runtime, principal, tenant_id)
    return await runtime.genesys.token_status(tenant.genesys_credentials)


class TokenRefreshFailed(XyprError):
    """409: Genesys would not issue a token for the stored credentials (like `onboarding_failed`: the request was
    well formed, the upstream refused); the error is kept in the token status."""

    status_code = 409
    code = "genesys_token_refresh_failed"


def _iso(moment: float | None) -> str | None:
    """A time for the audit log, readable by people (ISO 8601, UTC)."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds") if moment is not None else None


async def refresh_genesys_token(runtime: Runtime, principal: Principal, tenant_id: str) -> TokenStatus:
    """Fetch a new Genesys token now (audited); 502 naming Genesys' answer when it refuses."""
    tenant = await tenant_in_scope(runtime, principal, tenant_id, roles=_CHANGERS)
    try:
        status = await runtime.genesys.refresh_token(tenant.genesys_credentials)
    except XyprError as exc:
        await record_audit(runtime.database, principal, "genesys_token.refresh", tenant_id=tenant_id,
                           target=tenant.name, details={"ok": False, "error": exc.message[:300]})  # fmt: skip
        raise TokenRefreshFailed(f"Genesys did not issue a token: {exc.message}") from exc
    await record_audit(runtime.database, principal, "genesys_token.refresh", tenant_id=tenant_id,
                       target=tenant.name, details={"ok": True, "expires_at": _iso(status.expires_at)})  # fmt: skip
    return status


@dataclass(frozen=True, slots=True)
class NumberStatus:
    """What Meta says about the tenant's number with the stored token."""

    token_valid: bool
    message: str
    throughput: str | None = None
    quality_rating: str | None = None
    verified_name: str | None = None


async def whatsapp_number_status(runtime: Runtime, principal: Principal, tenant_id: str) -> NumberStatus:
    """`GET /{phone_number_id}` with the tenant's token: is the token valid, the throughput tier, quality."""
    tenant = await tenant_in_scope(runtime, principal, tenant_id)
    try:
        answer = await runtime.graph.read_number(
            tenant.whatsapp_credentials, fields="display_phone_number,verified_name,quality_rating,throughput"
        )
    except httpx.HTTPError as exc:
        return NumberStatus(False, f"Graph API unreachable ({type(exc).__name__})")
    try:
        payload: Any = answer.json()
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    if not answer.is_success:
        error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
        code = error.get("code")
        text = "the access token is invalid or expired" if code == 190 else str(error.get("message") or "refused")
        return NumberStatus(False, f"Meta error {code}: {text[:200]}" if code is not None else text[:200])
    throughput = payload.get("throughput")
    level = throughput.get("level") if isinstance(throughput, dict) else None
    return NumberStatus(
        token_valid=True,
        message=f"the token can read {payload.get('display_phone_number') or tenant.wa_phone_number_id}",
        throughput=str(level) if level else None,
        quality_rating=str(payload["quality_rating"]) if payload.get("quality_rating") else None,
        verified_name=str(payload["verified_name"]) if payload.get("verified_name") else None,
    )


@dataclass(frozen=True, slots=True)
class WebhookHelp:
    """Where Meta and Genesys must post, the verify token masked, and when each last posted."""

    whatsapp_url: str
    genesys_url: str
    verify_token_masked: str
    last_whatsapp_at: float | None
    last_genesys_at: float | None


async def webhook_help(runtime: Runtime, principal: Principal, tenant_id: str) -> WebhookHelp:
    """The webhook URLs to configure and the time of the last signed webhook per direction."""
    tenant = await tenant_in_scope(runtime, principal, tenant_id)
    base = runtime.settings.public_url.rstrip("/")
    seen = await last_webhooks(runtime.cache, tenant.id)
    return WebhookHelp(
        whatsapp_url=f"{base}/webhook/whatsapp",
        genesys_url=f"{base}/webhook/genesys",
        verify_token_masked=mask(tenant.wa_verify_token),
        last_whatsapp_at=seen["whatsapp"],
        last_genesys_at=seen["genesys"],
    )


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The outcome of Meta's verification handshake, played against our own webhook URL."""

    ok: bool
    status_code: int | None
    message: str


async def check_webhook_verification(runtime: Runtime, principal: Principal, tenant_id: str) -> VerificationResult:
    """Do what Meta does when the webhook is saved: `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`
    against `XYPR_PUBLIC_URL/webhook/whatsapp`; it passes when the answer is exactly the challenge."""
    tenant = await tenant_in_scope(runtime, principal, tenant_id, roles=_CHANGERS)
    url = f"{runtime.settings.public_url.rstrip('/')}/webhook/whatsapp"
    challenge = str(secrets.randbelow(10**9))
    params = {"hub.mode": "subscribe", "hub.verify_token": tenant.wa_verify_token, "hub.challenge": challenge}
    try:
        answer = await runtime.http.get(url, params=params)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"{url} is unreachable from Xypr itself ({type(exc).__name__})") from exc
    if answer.status_code == 200 and answer.text == challenge:
        return VerificationResult(True, 200, f"{url} answered the challenge: Meta will accept this webhook")
    return VerificationResult(
        False, answer.status_code, f"{url} answered HTTP {answer.status_code} instead of the challenge"
    )
