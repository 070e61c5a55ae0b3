"""Forwarding a request to a service in another process: bodies streamed both ways, headers kept, X-Forwarded-*."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import httpx
import orjson
import structlog
from starlette.types import Message, Receive, Scope, Send

from xypr.core.logging import get_logger

__all__ = ["Upstreams", "forward"]

log = get_logger(__name__)

# Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never forwarded.
_HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
        b"transfer-encoding", b"upgrade", b"host", b"content-length",
    }
)  # fmt: skip
# The gateway's own server writes these on the answer; the service's copies would be duplicates.
_SERVER_WRITTEN = frozenset({b"server", b"date"})


@dataclass(frozen=True, slots=True)
class Upstreams:
    """Path prefixes served by other processes, longest first, with their base URLs."""

    routes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, prefixes_by_url: Mapping[str, Sequence[str]]) -> Upstreams:
        """From `{base_url: [prefix, …]}`."""
        routes = [
            (prefix.rstrip("/"), url.rstrip("/")) for url, prefixes in prefixes_by_url.items() for prefix in prefixes
        ]
        return cls(tuple(sorted(routes, key=lambda route: len(route[0]), reverse=True)))

    def match(self, path: str) -> str | None:
        """The base URL serving `path`, or None when this process serves it."""
        for prefix, url in self.routes:
            if path == prefix or path.startswith(prefix + "/"):
                return url
        return None


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _forwarded_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    headers = [(key, value) for key, value in scope["headers"] if key.lower() not in _HOP_BY_HOP]
    client = scope["client"][0] if scope.get("client") else ""
    prior = next((value for key, value in headers if key == b"x-forwarded-for"), b"")
    headers = [(key, value) for key, value in headers if not key.startswith(b"x-forwarded-")]
    chain = (prior.decode("latin-1") + ", " if prior else "") + client
    host = next((value for key, value in scope["headers"] if key == b"host"), b"")
    # The id the gateway logs this request under travels on, so the service's logs line up with it.
    # (In place of the caller's header, which the gateway may have found unfit and replaced.)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        headers = [(key, value) for key, value in headers if key != b"x-request-id"]
        headers.append((b"x-request-id", str(request_id).encode("latin-1")))
    headers += [
        (b"x-forwarded-for", chain.encode("latin-1")),
        (b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()),
        (b"x-forwarded-host", host),
    ]
    return headers


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def forward(http: httpx.AsyncClient, upstream: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Send the request to `upstream` and stream its answer back (502 unreachable, 504 too slow)."""
    target = upstream + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    method = scope["method"]
    body = _request_body(receive) if method not in ("GET", "HEAD") else None
    request = http.build_request(method, target, headers=_forwarded_headers(scope), content=body)
    try:
        response = await http.send(request, stream=True)
    except httpx.TimeoutException:
        log.warning("gateway.upstream_timeout", upstream=upstream, path=scope["path"])
        await _error(send, 504, "gateway_timeout", "the service did not answer in time")
        return
    except httpx.HTTPError as exc:
        log.warning("gateway.upstream_unreachable", upstream=upstream, error=type(exc).__name__)
        await _error(send, 502, "bad_gateway", "the service is unreachable; retry later")
        return
    try:
        headers = [
            (key.lower(), value)
            for key, value in response.headers.raw
            if (key.lower() not in _HOP_BY_HOP or key.lower() == b"content-length")
            and key.lower() not in _SERVER_WRITTEN
        ]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        async for chunk in response.aiter_raw():
            message: Message = {"type": "http.response.body", "body": chunk, "more_body": True}
            await send(message)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()
