"""Genesys Cloud client: client-credentials token per tenant (shared cache), Open Messaging inbound calls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from xypr.backends.cache.base import Cache
from xypr.core.errors import PermanentError, TransientError
from xypr.core.metrics import UPSTREAM_LATENCY
from xypr.tenants.service import TenantRuntime

__all__ = ["GenesysClient", "api_base", "login_base"]

# Refresh this long before Genesys says the token expires, so no call goes out with a dying token.
TOKEN_MARGIN_SECONDS = 300.0

_PATHS = {
    "message": "/inbound/open/message",
    "receipt": "/inbound/open/receipt",
    "event": "/inbound/open/event",
    "structured": "/inbound/open/structured/response",
}


def api_base(region: str, override: str = "") -> str:
    """`https://api.{region}`, or the configured override (sandbox, tests)."""
    return (override or f"https://api.{region}").rstrip("/")


def login_base(region: str, override: str = "") -> str:
    """`https://login.{region}`, or the configured override."""
    return (override or f"https://login.{region}").rstrip("/")


class GenesysClient:
    """Posts Open Messaging inbound requests for tenants, reusing one token per tenant across processes."""

    def __init__(self, http: httpx.AsyncClient, cache: Cache, *, api_url: str = "", login_url: str = "") -> None:
        self._http = http
        self._cache = cache
        self._api_url = api_url
        self._login_url = login_url
        self._locks: dict[str, asyncio.Lock] = {}

    async def send(self, tenant: TenantRuntime, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one inbound request (`message`, `receipt`, `event`, `structured`); returns Genesys' answer."""
        url = (
            f"{api_base(tenant.genesys_region, self._api_url)}/api/v2/conversations/messages/"
            f"{tenant.genesys_integration_id}{_PATHS[kind]}"
        )
        params = {"prefetchConversationId": "true"} if kind == "message" else None
        token = await self.token(tenant)
        response = await self._call(url, body, token, params)
        if response.status_code == 401:
            # Expired or revoked early: one fresh token, one more try.
            token = await self.token(tenant, stale=token)
            response = await self._call(url, body, token, params)
        return _answer(response)

    async def token(self, tenant: TenantRuntime, *, stale: str | None = None) -> str:
        """A valid access token for the tenant; `stale` names one the API just refused."""
        key = f"{tenant.id}:genesys-token"
        cached = await self._cache.get(key)
        if cached is not None and cached.decode() != stale:
            return cached.decode()
        lock = self._locks.setdefault(tenant.id, asyncio.Lock())
        async with lock:  # one token request per tenant per process at a time
            cached = await self._cache.get(key)
            if cached is not None and cached.decode() != stale:
                return cached.decode()
            token, expires_in = await self._fetch_token(tenant)
            ttl = max(expires_in - TOKEN_MARGIN_SECONDS, expires_in * 0.5, 1.0)
            await self._cache.set(key, token.encode(), ttl=ttl)
            return token

    async def _fetch_token(self, tenant: TenantRuntime) -> tuple[str, float]:
        url = f"{login_base(tenant.genesys_region, self._login_url)}/oauth/token"
        started = time.perf_counter()
        try:
            response = await self._http.post(
                url,
                data={"grant_type": "client_credentials"},
                auth=(tenant.genesys_client_id, tenant.genesys_client_secret),
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"Genesys login unreachable: {type(exc).__name__}") from exc
        UPSTREAM_LATENCY.labels("genesys-login", str(response.status_code)).observe(time.perf_counter() - started)
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"Genesys login HTTP {response.status_code}", retry_after=_retry_after(response))
        if not response.is_success:
            raise PermanentError(
                f"Genesys refused the client credentials (HTTP {response.status_code})", reason="GeneralError"
            )
        payload = orjson.loads(response.content)
        return str(payload["access_token"]), float(payload.get("expires_in", 86400))

    async def _call(self, url: str, body: dict[str, Any], token: str, params: dict[str, str] | None) -> httpx.Response:
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._http.post(
                url,
                content=orjson.dumps(body),
                params=params,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            outcome = str(response.status_code)
            return response
        except httpx.HTTPError as exc:
            raise TransientError(f"Genesys API unreachable: {type(exc).__name__}") from exc
        finally:
            UPSTREAM_LATENCY.labels("genesys", outcome).observe(time.perf_counter() - started)


def _answer(response: httpx.Response) -> dict[str, Any]:
    if response.is_success:
        payload = orjson.loads(response.content) if response.content else {}
        return payload if isinstance(payload, dict) else {}
    detail = response.text[:500]
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise TransientError(f"Genesys HTTP {response.status_code}: {detail}", retry_after=_retry_after(response))
    raise PermanentError(f"Genesys HTTP {response.status_code}: {detail}", upstream_code=response.status_code)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
