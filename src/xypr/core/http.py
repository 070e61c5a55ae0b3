"""HTTP clients: pooled connections, explicit timeouts, no redirects to surprise us.

Two of them, for two kinds of call:

- `create_http_client` (httpx): everything off the hot path — token requests, media and attachment
  downloads, uploads, onboarding checks, the gateway's proxy.
- `JsonPoster`: the one call every message makes (Open Messaging, Graph API send), a JSON POST.
  `AiohttpPoster` does it for ~85 µs of CPU where httpx needs ~1 ms at the same concurrency
  (measured here: `docs/performance.md`); `HttpxPoster` does it over any httpx client (tests hand
  in mock transports).

Both send the correlation id of the event in hand as `X-Request-Id` (`xypr.core.correlation`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

from xypr.core.correlation import upstream_headers

__all__ = ["AiohttpPoster", "HttpxPoster", "JsonAnswer", "JsonPoster", "UpstreamUnreachable", "create_http_client"]

USER_AGENT = "xypr/0.1"


def create_http_client(*, timeout: float = 10.0, max_connections: int = 200) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` tuned for many concurrent upstream calls."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


class UpstreamUnreachable(Exception):
    """No answer: connection refused or reset, timeout, malformed response. The name says which."""


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """An upstream's answer: status, headers (case-insensitive) and the body as bytes."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        """2xx."""
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        """The body as text (for error messages)."""
        return self.content.decode("utf-8", "replace")


class JsonPoster(Protocol):
    """POSTs a JSON body and reads the whole answer."""

    async def post_json(
        self, url: str, body: bytes, *, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> JsonAnswer:
        """POST `body` (already JSON) to `url`; raises `UpstreamUnreachable` when nothing usable came back."""

    async def aclose(self) -> None:
        """Close pooled connections."""


class AiohttpPoster:
    """`JsonPoster` over one aiohttp session (created on first use, inside the running loop)."""

    def __init__(self, *, timeout: float = 10.0, max_connections: int = 200) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5.0))
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                # HTTP(S)_PROXY / NO_PROXY, as httpx honours them, but only when one is set: trusting the
                # environment makes aiohttp look up ~/.netrc in a thread for every request.
                trust_env=_proxy_configured(),
            )
        return self._session

    async def post_json(
        self, url: str, body: bytes, *, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> JsonAnswer:
        """POST without following redirects; the whole body is read before returning."""
        headers = {"Content-Type": "application/json", **upstream_headers(), **headers}
        try:
            async with self._client().post(
                url, data=body, headers=headers, params=params, allow_redirects=False
            ) as response:
                content = await response.read()
                return JsonAnswer(response.status, response.headers, content)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamUnreachable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()


def _proxy_configured() -> bool:
    return any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"))


class HttpxPoster:
    """`JsonPoster` over an httpx client (which stays the caller's to close)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def post_json(
        self, url: str, body: bytes, *, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> JsonAnswer:
        """POST through the httpx client."""
        headers = {"Content-Type": "application/json", **upstream_headers(), **headers}
        try:
            response = await self._http.post(url, content=body, headers=headers, params=params)
        except httpx.HTTPError as exc:
            raise UpstreamUnreachable(type(exc).__name__) from exc
        return JsonAnswer(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        """Nothing of its own to close."""
