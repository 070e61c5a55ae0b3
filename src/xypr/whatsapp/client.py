"""Graph API client: sends with the tenant's token and classifies Meta errors by `code`."""

from __future__ import annotations

import time
from typing import Any

import httpx

from xypr.core.errors import PermanentError, TransientError
from xypr.core.metrics import UPSTREAM_LATENCY
from xypr.tenants.service import TenantRuntime
from xypr.whatsapp.errors import PAIR_RATE_LIMIT, TOKEN_EXPIRED, TRANSIENT_CODES, describe, receipt_reason

__all__ = ["GraphClient", "TokenExpired"]


class TokenExpired(TransientError):
    """Meta error 190: re-read the tenant's token, then retry."""


class GraphClient:
    """Calls `{graph}/{version}/…` for one tenant at a time."""

    def __init__(self, http: httpx.AsyncClient, *, graph_url: str, api_version: str) -> None:
        self._http = http
        self._base = f"{graph_url.rstrip('/')}/{api_version}"

    async def send_message(self, tenant: TenantRuntime, body: dict[str, Any]) -> dict[str, Any]:
        """POST `/{phone_number_id}/messages`; returns Meta's answer (accepted, not yet delivered)."""
        return await self._post(tenant, f"/{tenant.wa_phone_number_id}/messages", body)

    async def _post(self, tenant: TenantRuntime, path: str, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._http.post(
                self._base + path, json=body, headers={"Authorization": f"Bearer {tenant.wa_access_token}"}
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"Graph API unreachable: {type(exc).__name__}") from exc
        else:
            outcome = str(response.status_code)
            return self._answer(response)
        finally:
            UPSTREAM_LATENCY.labels("meta", outcome).observe(time.perf_counter() - started)

    @staticmethod
    def _answer(response: httpx.Response) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.is_success and isinstance(payload, dict):
            return payload
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientError(f"Graph API HTTP {response.status_code}", retry_after=_retry_after(response))
            raise PermanentError(f"Graph API HTTP {response.status_code}", reason="GeneralError")
        code = error.get("code")
        text = describe(error)
        if code == TOKEN_EXPIRED:
            raise TokenExpired(text, upstream_code=code)
        if code in TRANSIENT_CODES or (code is None and response.status_code >= 500):
            # Pair rate limit (one user): Meta asks for 4^n seconds between tries.
            growth = 4.0 if code == PAIR_RATE_LIMIT else 2.0
            raise TransientError(text, retry_after=_retry_after(response), growth=growth, upstream_code=code)
        raise PermanentError(text, reason=receipt_reason(code, text), upstream_code=code)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
