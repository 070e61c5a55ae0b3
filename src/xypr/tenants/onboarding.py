"""Onboarding checks and one-step setup: prove a tenant's credentials against Genesys and Meta, field by field.

Checks never raise: each returns a `CheckResult` whose message says what was tried and what the
upstream answered (never a secret). The setup steps create the Open Messaging integration and
subscribe the Meta app to the WABA.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from xypr.config import Settings
from xypr.genesys.client import api_base, login_base
from xypr.tenants.schemas import CheckResult, header_safe
from xypr.tenants.service import TenantRuntime

__all__ = [
    "ACCESS_TOKEN",
    "CREATE_INTEGRATION",
    "CREDENTIALS",
    "INTEGRATION",
    "SUBSCRIBE_APP",
    "Onboarding",
]

CREDENTIALS = "genesys.credentials"
INTEGRATION = "genesys.integration_id"
ACCESS_TOKEN = "whatsapp.access_token"  # noqa: S105 - the name of a check, not a token
CREATE_INTEGRATION = "setup.create_integration"
SUBSCRIBE_APP = "setup.subscribe_app"

_OPEN_INTEGRATIONS = "/api/v2/conversations/messaging/integrations/open"


class Onboarding:
    """The calls that check and set up a tenant, with the process's HTTP client and upstream URLs."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self._http = http
        self._settings = settings
        self._graph = f"{settings.meta_graph_url.rstrip('/')}/{settings.meta_api_version}"

    @property
    def genesys_webhook_url(self) -> str:
        """Where Genesys must post agent messages: `XYPR_PUBLIC_URL/webhook/genesys`."""
        return f"{self._settings.public_url.rstrip('/')}/webhook/genesys"

    async def run_checks(self, tenant: TenantRuntime) -> dict[str, CheckResult]:
        """Every check, Genesys and Meta side concurrently, keyed by the field they vouch for."""

        async def genesys_side() -> dict[str, CheckResult]:
            token, credentials = await self.genesys_token(tenant)
            if token is None:
                skipped = CheckResult(ok=False, message="not checked: no Genesys token (see genesys.credentials)")
                return {CREDENTIALS: credentials, INTEGRATION: skipped}
            return {CREDENTIALS: credentials, INTEGRATION: await self.check_integration(tenant, token)}

        genesys, phone = await asyncio.gather(genesys_side(), self.check_phone_number(tenant))
        return {**genesys, ACCESS_TOKEN: phone}

    async def genesys_token(self, tenant: TenantRuntime) -> tuple[str | None, CheckResult]:
        """A fresh client-credentials token (not the cached one: the credentials may be new)."""
        url = f"{login_base(tenant.genesys_region, self._settings.genesys_login_url)}/oauth/token"
        if not (header_safe(tenant.genesys_client_id) and header_safe(tenant.genesys_client_secret)):
            return None, CheckResult(ok=False, message=_NOT_HEADER_SAFE.format(what="the client id or secret"))
        try:
            response = await self._http.post(
                url,
                data={"grant_type": "client_credentials"},
                auth=(tenant.genesys_client_id, tenant.genesys_client_secret),
            )
        except httpx.HTTPError as exc:
            return None, CheckResult(ok=False, message=f"Genesys login unreachable ({type(exc).__name__})")
        if response.status_code in (400, 401, 403):
            return None, CheckResult(
                ok=False,
                message=f"Genesys refused the client credentials (HTTP {response.status_code}: "
                f"{_genesys_problem(response)})",
            )
        payload = _json(response)
        token = payload.get("access_token") if response.is_success else None
        if not isinstance(token, str) or not token:
            return None, CheckResult(ok=False, message=f"Genesys login answered HTTP {response.status_code}")
        return token, CheckResult(ok=True, message=f"client credentials accepted by login.{tenant.genesys_region}")

    async def check_integration(self, tenant: TenantRuntime, token: str) -> CheckResult:
        """The Open Messaging integration exists, is created, and posts to our webhook URL."""
        url = f"{api_base(tenant.genesys_region, self._settings.genesys_api_url)}{_OPEN_INTEGRATIONS}/"
        try:
            response = await self._http.get(url + tenant.genesys_integration_id, headers=_bearer(token))
        except httpx.HTTPError as exc:
            return CheckResult(ok=False, message=f"Genesys API unreachable ({type(exc).__name__})")
        if response.status_code == 404:
            return CheckResult(
                ok=False, message=f"no Open Messaging integration {tenant.genesys_integration_id} in this organisation"
            )
        if response.status_code == 403:
            return CheckResult(
                ok=False, message="the OAuth client may not read this integration (needs messaging:integration:view)"
            )
        if not response.is_success:
            return CheckResult(
                ok=False, message=f"Genesys answered HTTP {response.status_code}: {_genesys_problem(response)}"
            )
        integration = _json(response)
        status = str(integration.get("createStatus") or "Completed")
        if status != "Completed":
            return CheckResult(ok=False, message=f"the integration is not ready (createStatus {status})")
        webhook = str(integration.get("outboundNotificationWebhookUrl") or "").rstrip("/")
        if webhook != self.genesys_webhook_url:
            return CheckResult(
                ok=False,
                message=f"the integration posts agent messages to {webhook or 'nowhere'}, "
                f"not to {self.genesys_webhook_url}",
            )
        return CheckResult(ok=True, message=f"integration {integration.get('name', '')!s} exists and posts to us")

    async def check_phone_number(self, tenant: TenantRuntime) -> CheckResult:
        """The WhatsApp access token can read the phone number (`GET /{phone_number_id}`)."""
        if not header_safe(tenant.wa_access_token):
            return CheckResult(ok=False, message=_NOT_HEADER_SAFE.format(what="the access token"))
        try:
            response = await self._http.get(
                f"{self._graph}/{tenant.wa_phone_number_id}", headers=_bearer(tenant.wa_access_token)
            )
        except httpx.HTTPError as exc:
            return CheckResult(ok=False, message=f"Graph API unreachable ({type(exc).__name__})")
        payload = _json(response)
        if not response.is_success:
            return CheckResult(ok=False, message=_meta_problem(payload, tenant.wa_phone_number_id))
        display = str(payload.get("display_phone_number") or "")
        message = f"the token can read phone number {display or tenant.wa_phone_number_id}"
        if display and _digits(display) != _digits(tenant.wa_display_phone_number):
            message += f" (configured as {tenant.wa_display_phone_number})"
        return CheckResult(ok=True, message=message)

    async def subscribe_app(self, tenant: TenantRuntime) -> CheckResult:
        """Subscribe the Meta app to the WABA's webhooks (`POST /{waba_id}/subscribed_apps`)."""
        if not header_safe(tenant.wa_access_token):
            return CheckResult(ok=False, message=_NOT_HEADER_SAFE.format(what="the access token"))
        try:
            response = await self._http.post(
                f"{self._graph}/{tenant.wa_waba_id}/subscribed_apps", headers=_bearer(tenant.wa_access_token)
            )
        except httpx.HTTPError as exc:
            return CheckResult(ok=False, message=f"Graph API unreachable ({type(exc).__name__})")
        payload = _json(response)
        if response.is_success and payload.get("success") is True:
            return CheckResult(ok=True, message=f"the app is subscribed to WABA {tenant.wa_waba_id}")
        return CheckResult(ok=False, message=_meta_problem(payload, tenant.wa_waba_id))

    async def create_integration(
        self, tenant: TenantRuntime, token: str, *, name: str, webhook_secret: str
    ) -> tuple[str | None, CheckResult]:
        """Create the Open Messaging integration posting to us, and wait (bounded) until Genesys completes it."""
        base = f"{api_base(tenant.genesys_region, self._settings.genesys_api_url)}{_OPEN_INTEGRATIONS}"
        body = {
            "name": name,
            "outboundNotificationWebhookUrl": self.genesys_webhook_url,
            "outboundNotificationWebhookSignatureSecretToken": webhook_secret,
        }
        try:
            response = await self._http.post(base, json=body, headers=_bearer(token))
        except httpx.HTTPError as exc:
            return None, CheckResult(ok=False, message=f"Genesys API unreachable ({type(exc).__name__})")
        integration = _json(response)
        integration_id = integration.get("id")
        if not response.is_success or not isinstance(integration_id, str):
            return None, CheckResult(
                ok=False,
                message=f"Genesys refused to create the integration (HTTP {response.status_code}: "
                f"{_genesys_problem(response)})",
            )
        deadline = time.monotonic() + self._settings.onboarding_poll_timeout_seconds
        while (status := str(integration.get("createStatus") or "Completed")) == "Initiated":
            if time.monotonic() >= deadline:
                return None, CheckResult(
                    ok=False,
                    message=f"integration {integration_id} still not created after "
                    f"{self._settings.onboarding_poll_timeout_seconds:g} s; delete it in Genesys and try again",
                )
            await asyncio.sleep(self._settings.onboarding_poll_interval_seconds)
            try:
                polled = await self._http.get(f"{base}/{integration_id}", headers=_bearer(token))
            except httpx.HTTPError:
                continue  # a blip while polling: the deadline still bounds the wait
            if polled.is_success:
                integration = _json(polled)
        if status != "Completed":
            error = integration.get("createError")
            detail = error.get("message") if isinstance(error, dict) else None
            return None, CheckResult(
                ok=False, message=f"Genesys could not create the integration ({status}: {detail or 'no detail'})"
            )
        return integration_id, CheckResult(
            ok=True, message=f"created integration {integration_id} posting to {self.genesys_webhook_url}"
        )


_NOT_HEADER_SAFE = "not checked: {what} holds characters an HTTP header cannot carry (visible ASCII only)"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def _genesys_problem(response: httpx.Response) -> str:
    payload = _json(response)
    text = payload.get("message") or payload.get("error_description") or payload.get("error")
    return str(text)[:300] if text else "no detail"


def _meta_problem(payload: dict[str, Any], object_id: str) -> str:
    error = payload.get("error")
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    if code == 190:
        return "the access token is invalid or expired (Meta error 190)"
    if code == 100:
        return f"the token cannot access {object_id} (Meta error 100: {str(error.get('message', ''))[:200]})"
    message = str(error.get("message") or "no detail")[:300]
    return f"Meta answered error {code}: {message}" if code is not None else f"Meta answered: {message}"
