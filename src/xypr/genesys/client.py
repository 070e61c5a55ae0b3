"""Genesys Cloud client: client-credentials token per tenant (shared cache), Open Messaging inbound calls."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from xypr.backends.cache.base import Cache
from xypr.backends.db.base import as_utc
from xypr.core.errors import PermanentError, TransientError
from xypr.core.http import HttpxPoster, JsonAnswer, JsonPoster, UpstreamUnreachable
from xypr.core.metrics import GENESYS_TOKENS, UPSTREAM_LATENCY

__all__ = ["GenesysClient", "GenesysCredentials", "TokenStatus", "api_base", "login_base"]

# Refresh this long before Genesys says the token expires, so no call goes out with a dying token.
TOKEN_MARGIN_SECONDS = 300.0
# One process per tenant fetches a token; the others wait for it in the shared cache this long.
TOKEN_LOCK_SECONDS = 15.0
TOKEN_POLL_SECONDS = 0.05
# Each process keeps the shared token this long, to save a cache read per call. It is safe: the shared
# copy is dropped TOKEN_MARGIN_SECONDS before the token expires, a refused token is replaced at once
# (`stale`), and the memo is keyed by the whole credentials, so changed credentials never reuse it.
TOKEN_MEMO_SECONDS = 10.0

_PATHS = {
    "message": "/inbound/open/message",
    "receipt": "/inbound/open/receipt",
    "event": "/inbound/open/event",
    "structured": "/inbound/open/structured/response",
}


@dataclass(frozen=True, slots=True)
class GenesysCredentials:
    """What the client needs of one tenant's Genesys organisation; `tenant_id` keys its shared token."""

    tenant_id: str
    region: str
    client_id: str
    integration_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenStatus:
    """What operators see of a tenant's Genesys token (never the token itself); times are Unix seconds."""

    cached: bool
    refreshed_at: float | None = None
    expires_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    @property
    def healthy(self) -> bool:
        """A token is cached and no error happened since it was fetched."""
        return self.cached and (self.last_error_at is None or (self.refreshed_at or 0) >= self.last_error_at)


def api_base(region: str, override: str = "") -> str:
    """`https://api.{region}`, or the configured override (sandbox, tests)."""
    return (override or f"https://api.{region}").rstrip("/")


def login_base(region: str, override: str = "") -> str:
    """`https://login.{region}`, or the configured override."""
    return (override or f"https://login.{region}").rstrip("/")


class GenesysClient:
    """Posts Open Messaging inbound requests for tenants, reusing one token per tenant across processes."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        cache: Cache,
        *,
        api_url: str = "",
        login_url: str = "",
        poster: JsonPoster | None = None,
    ) -> None:
        self._http = http  # token requests
        self._poster = poster or HttpxPoster(http)  # Open Messaging calls, one per message
        self._cache = cache
        self._api_url = api_url
        self._login_url = login_url
        self._locks: dict[str, asyncio.Lock] = {}
        self._memo: dict[GenesysCredentials, tuple[str, float]] = {}  # credentials → (token, monotonic until)

    async def request(
        self, tenant: GenesysCredentials, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Any other Platform API call (`path` from `/api/v2/…`) with the tenant's token: a refused (401)
        token is replaced once, as for `send`. Returns Genesys' response for the caller to read; a token
        Genesys will not issue raises as for `send`, a network failure as `httpx.HTTPError`."""
        url = f"{api_base(tenant.region, self._api_url)}{path}"
        token = await self.token(tenant)
        response = await self._http.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            token = await self.token(tenant, stale=token)
            response = await self._http.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                await self._forget_token(tenant, token)  # refused although fresh: the next call starts clean
        return response

    async def send(self, tenant: GenesysCredentials, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST one inbound request (`message`, `receipt`, `event`, `structured`); returns Genesys' answer."""
        url = (
            f"{api_base(tenant.region, self._api_url)}/api/v2/conversations/messages/"
            f"{tenant.integration_id}{_PATHS[kind]}"
        )
        params = {"prefetchConversationId": "true"} if kind == "message" else None
        token = await self.token(tenant)
        response = await self._call(url, body, token, params)
        if response.status_code == 401:
            # Expired or revoked early: one fresh token, one more try.
            token = await self.token(tenant, stale=token)
            response = await self._call(url, body, token, params)
            if response.status_code == 401:
                # A token Genesys just issued is refused: drop it, so the stage's retry starts clean.
                await self._forget_token(tenant, token)
                raise TransientError("Genesys refused a fresh access token (HTTP 401)", upstream_code=401)
        return _answer(response)

    async def token(self, tenant: GenesysCredentials, *, stale: str | None = None) -> str:
        """A valid access token for the tenant; `stale` names one the API just refused."""
        now = time.monotonic()
        memo = self._memo.get(tenant)
        if memo is not None and memo[1] > now and memo[0] != stale:
            return memo[0]
        cached = await self._cache.get(_token_key(tenant))
        if cached is not None and cached.decode() != stale:
            return self._remember(tenant, cached.decode())
        lock = self._locks.setdefault(tenant.tenant_id, asyncio.Lock())
        async with lock:  # one token request per tenant per process at a time
            return self._remember(tenant, await self._shared_token(tenant, stale))

    def _remember(self, tenant: GenesysCredentials, token: str) -> str:
        now = time.monotonic()
        if len(self._memo) > 1000:  # tenants whose credentials changed leave entries behind: drop the old
            self._memo = {key: kept for key, kept in self._memo.items() if kept[1] > now}
        self._memo[tenant] = (token, now + TOKEN_MEMO_SECONDS)
        return token

    async def forget_token(self, tenant: GenesysCredentials) -> None:
        """Drop the tenant's cached token (its credentials changed): the next call fetches a new one."""
        self._forget_memo(tenant)
        await self._cache.delete(_token_key(tenant))

    def _forget_memo(self, tenant: GenesysCredentials) -> None:
        for kept in [key for key in self._memo if key.tenant_id == tenant.tenant_id]:
            del self._memo[kept]

    async def token_status(self, tenant: GenesysCredentials) -> TokenStatus:
        """Whether a token is cached, when it was fetched and expires, and the last error fetching one."""
        cached = await self._cache.get(_token_key(tenant)) is not None
        raw = await self._cache.get(_status_key(tenant))
        record: dict[str, Any] = orjson.loads(raw) if raw else {}
        return TokenStatus(
            cached=cached,
            refreshed_at=record.get("refreshed_at"),
            expires_at=record.get("expires_at") if cached else None,
            last_error=record.get("last_error"),
            last_error_at=record.get("last_error_at"),
        )

    async def refresh_token(self, tenant: GenesysCredentials) -> TokenStatus:
        """Fetch a new token now (an operator's forced refresh); a failure is recorded and raised."""
        self._forget_memo(tenant)  # else a token this process kept would answer instead of a new one
        old = await self._cache.get(_token_key(tenant))
        await self.token(tenant, stale=old.decode() if old is not None else None)
        return await self.token_status(tenant)

    async def _note(self, tenant: GenesysCredentials, **fields: Any) -> None:
        """Merge `fields` into the tenant's token status record (kept a week: errors matter after the fact)."""
        raw = await self._cache.get(_status_key(tenant))
        record: dict[str, Any] = orjson.loads(raw) if raw else {}
        record.update(fields)
        await self._cache.set(_status_key(tenant), orjson.dumps(record), ttl=7 * 86400.0)

    async def _shared_token(self, tenant: GenesysCredentials, stale: str | None) -> str:
        """The cached token, or a new one fetched by whichever process takes the shared lock first."""
        key, lock_key = _token_key(tenant), f"{tenant.tenant_id}:genesys-token-lock"
        deadline = time.monotonic() + TOKEN_LOCK_SECONDS
        while True:
            cached = await self._cache.get(key)
            if cached is not None and cached.decode() != stale:
                return cached.decode()
            if await self._cache.set_nx(lock_key, b"1", ttl=TOKEN_LOCK_SECONDS):
                try:
                    cached = await self._cache.get(key)  # stored while we were taking the lock?
                    if cached is not None and cached.decode() != stale:
                        return cached.decode()
                    try:
                        token, expires_in = await self._fetch_token(tenant)
                    except (TransientError, PermanentError) as exc:
                        await self._note(tenant, last_error=exc.message[:300], last_error_at=time.time())
                        raise
                    ttl = max(expires_in - TOKEN_MARGIN_SECONDS, expires_in * 0.5, 1.0)
                    await self._cache.set(key, token.encode(), ttl=ttl)
                    now = time.time()
                    await self._note(tenant, refreshed_at=now, expires_at=now + expires_in)
                    return token
                finally:
                    await self._cache.delete(lock_key)
            if time.monotonic() > deadline:
                raise TransientError("waited too long for another process to fetch the Genesys token")
            await asyncio.sleep(TOKEN_POLL_SECONDS)

    async def _forget_token(self, tenant: GenesysCredentials, token: str) -> None:
        self._forget_memo(tenant)
        cached = await self._cache.get(_token_key(tenant))
        if cached is not None and cached.decode() == token:
            await self._cache.delete(_token_key(tenant))

    async def _fetch_token(self, tenant: GenesysCredentials) -> tuple[str, float]:
        url = f"{login_base(tenant.region, self._login_url)}/oauth/token"
        started = time.perf_counter()
        try:
            response = await self._http.post(
                url,
                data={"grant_type": "client_credentials"},
                auth=(tenant.client_id, tenant.client_secret),
            )
        except httpx.HTTPError as exc:
            GENESYS_TOKENS.labels("unreachable").inc()
            raise TransientError(f"Genesys login unreachable: {type(exc).__name__}") from exc
        UPSTREAM_LATENCY.labels("genesys-login", str(response.status_code)).observe(time.perf_counter() - started)
        if response.status_code == 429 or response.status_code >= 500:
            GENESYS_TOKENS.labels("retry").inc()
            raise TransientError(f"Genesys login HTTP {response.status_code}", retry_after=_retry_after(response))
        if not response.is_success:
            GENESYS_TOKENS.labels("refused").inc()
            raise PermanentError(
                f"Genesys refused the client credentials (HTTP {response.status_code})",
                reason="GeneralError",
                upstream_code=response.status_code,
            )
        try:
            payload = orjson.loads(response.content)
            token, expires_in = str(payload["access_token"]), float(payload.get("expires_in", 86400))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            GENESYS_TOKENS.labels("malformed").inc()
            raise TransientError("Genesys login answered without an access token") from exc
        GENESYS_TOKENS.labels("issued").inc()
        return token, expires_in

    async def _call(self, url: str, body: dict[str, Any], token: str, params: dict[str, str] | None) -> JsonAnswer:
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._poster.post_json(
                url, orjson.dumps(body), params=params, headers={"Authorization": f"Bearer {token}"}
            )
            outcome = str(response.status_code)
            return response
        except UpstreamUnreachable as exc:
            raise TransientError(f"Genesys API unreachable: {exc}") from exc
        finally:
            UPSTREAM_LATENCY.labels("genesys", outcome).observe(time.perf_counter() - started)


def _answer(response: JsonAnswer) -> dict[str, Any]:
    if response.is_success:
        payload = orjson.loads(response.content) if response.content else {}
        return payload if isinstance(payload, dict) else {}
    detail = response.text[:500]
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise TransientError(f"Genesys HTTP {response.status_code}: {detail}", retry_after=_retry_after(response))
    raise PermanentError(f"Genesys HTTP {response.status_code}: {detail}", upstream_code=response.status_code)


def _token_key(tenant: GenesysCredentials) -> str:
    return f"{tenant.tenant_id}:genesys-token"


def _status_key(tenant: GenesysCredentials) -> str:
    return f"{tenant.tenant_id}:genesys-token-status"


def _retry_after(response: httpx.Response | JsonAnswer) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date (RFC 9110 allows both)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (as_utc(moment) - datetime.now(UTC)).total_seconds())
