"""The gateway in front of every route: authentication, CSRF, rate limits, body limits, security headers, routing."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xypr.auth.cookies import ACCESS_COOKIE, CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS, csrf_matches
from xypr.auth.principal import Principal, Role
from xypr.auth.service import session_revoked
from xypr.auth.tokens import read_access_token
from xypr.config import Settings
from xypr.core.errors import Unauthorized
from xypr.core.logging import get_logger
from xypr.runtime import Runtime
from xypr.services.gateway.paths import WEBHOOK_ALIASES, PathKind, PathRules
from xypr.services.gateway.proxy import Upstreams, forward
from xypr.whatsapp.mediatypes import accepted_media

__all__ = ["GatewayMiddleware", "GatewayOptions"]

log = get_logger(__name__)

_WINDOW_SECONDS = 60.0
# Webhook answers that mean "not authenticated or not a webhook": the ones a flood of garbage gets.
_REFUSED_WEBHOOK = frozenset({400, 401, 403, 404, 413})
# An agent's file (a media message or a template header from the widget) may be as large as the largest
# file WhatsApp takes (a 100 MB document), plus its multipart envelope. Such bodies stream on to the route,
# which checks the file against the limit of its own type; they are not held in the gateway.
_UPLOADS = re.compile(r"^/widget/api/conversations/[^/]+/(?:media|uploads)$")
UPLOAD_BODY_BYTES = max(kind.max_bytes for kind in accepted_media().values()) + 64 * 1024
# Pages load their scripts and styles from this origin only (/docs too: its assets are packaged).
_CSP_HTML = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """What this process's gateway does: the public gateway enforces limits and may proxy; a service behind it
    only authenticates."""

    rules: PathRules
    enforce_limits: bool
    upstreams: Upstreams


class _Reject(Exception):
    """Answer the request now with this status and error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    raw = _header(scope, b"cookie")
    if not raw:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed cookie header is no credential, not a crash
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _refused_key(scope: Scope) -> str:
    ip = scope["client"][0] if scope.get("client") else "unknown"
    return f"rl:webhook-refused:{ip}"


async def _send_error(send: Send, reject: _Reject) -> None:
    body = orjson.dumps({"error": {"code": reject.code, "message": reject.message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reject.headers.items()]
    await send({"type": "http.response.start", "status": reject.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_to_sign_in(scope: Scope, send: Send) -> None:
    """303 to `/admin/login?next=…` (htmx requests: 204 + `HX-Redirect`, which htmx follows as a page load)."""
    here = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
    if _header(scope, b"hx-request"):
        current = _header(scope, b"hx-current-url") or ""
        here = "/" + current.split("://", 1)[-1].split("/", 1)[-1] if current else "/admin"
    target = "/admin/login?next=" + quote(here, safe="")
    if _header(scope, b"hx-request"):
        status, headers = 204, [(b"hx-redirect", target.encode("latin-1"))]
    else:
        status, headers = 303, [(b"location", target.encode("latin-1"))]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


class GatewayMiddleware:
    """Authenticates (bearer or session cookie) and puts the `Principal` on `request.state.principal`.

    On the public gateway it also rate-limits per IP and per tenant (webhooks on their own budget), caps API
    bodies, adds security headers and forwards the prefixes of services that run in other processes.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings, options: GatewayOptions) -> None:
        self.app = app
        self.settings = settings
        self.options = options
        self._https = settings.public_url.lower().startswith("https://")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in WEBHOOK_ALIASES:
            scope = {**scope, "path": WEBHOOK_ALIASES[path], "raw_path": WEBHOOK_ALIASES[path].encode()}
            path = scope["path"]
        send = self._with_security_headers(send)
        kind = self.options.rules.kind(path)
        runtime: Runtime | None = getattr(scope["app"].state, "runtime", None) if "app" in scope else None
        if kind in (PathKind.PROBE, PathKind.SANDBOX) or runtime is None:
            await self._pass(scope, receive, send, path)
            return
        try:
            await self._admit(scope, runtime, kind, path)
            if kind is not PathKind.WEBHOOK:
                receive = await self._bounded_body(scope, receive)
        except _Reject as reject:
            if reject.status == 401 and path.startswith("/admin") and _header(scope, b"accept") != "text/event-stream":
                # A browser on the dashboard goes to the sign-in page, not to a JSON error.
                await _send_to_sign_in(scope, send)
                return
            await _send_error(send, reject)
            return
        if kind is PathKind.WEBHOOK and self.options.enforce_limits:
            await self._pass_webhook(scope, receive, send, path, runtime)
            return
        await self._pass(scope, receive, send, path, runtime=runtime)

    async def _pass_webhook(self, scope: Scope, receive: Receive, send: Send, path: str, runtime: Runtime) -> None:
        """Pass a webhook on; a refused one (unsigned, badly signed, malformed) counts against its address."""
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self._pass(scope, receive, send_noting_status, path, runtime=runtime)
        per_minute = self.settings.rate_limit_webhooks_per_ip
        if status in _REFUSED_WEBHOOK and per_minute > 0:
            await runtime.limits.count(_refused_key(scope), limit=per_minute, window=_WINDOW_SECONDS)

    async def _pass(
        self, scope: Scope, receive: Receive, send: Send, path: str, runtime: Runtime | None = None
    ) -> None:
        upstream = self.options.upstreams.match(path) if self.options.enforce_limits else None
        if upstream is not None and runtime is not None:
            started = False

            async def send_noting_start(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await forward(runtime.http, upstream, scope, receive, send_noting_start)
            except _UploadTooLarge as too_large:
                # Raised while the body streamed to the other process: no app error handler is in between.
                if started:
                    raise
                await _send_error(send, _Reject(413, "payload_too_large", str(too_large.detail)))
            return
        await self.app(scope, receive, send)

    async def _admit(self, scope: Scope, runtime: Runtime, kind: PathKind, path: str) -> None:
        """Rate limits and authentication; raises `_Reject` to refuse."""
        ip = scope["client"][0] if scope.get("client") else "unknown"
        if self.options.enforce_limits:
            if kind is PathKind.WEBHOOK:
                # Only refused webhooks spend the address budget (checked here, counted after the answer):
                # a tenant's own traffic is limited per tenant after its signature (services/deps.py).
                self._refused_webhooks_below_limit(scope, runtime)
                return
            await self._limit(runtime, f"rl:ip:{ip}", self.settings.rate_limit_per_ip, "address")
        elif kind is PathKind.WEBHOOK:
            return
        principal = await self._authenticate(scope, runtime, required=kind is PathKind.PROTECTED)
        if principal is None:
            return
        if self.options.enforce_limits and principal.tenant_id:
            await self._limit(
                runtime, f"rl:tenant:{principal.tenant_id}", self.settings.rate_limit_per_tenant, "organisation"
            )
        if path == "/metrics" and principal.role is not Role.XYPR_ADMIN:
            raise _Reject(403, "forbidden", "metrics are for Xypr administrators")

    def _refused_webhooks_below_limit(self, scope: Scope, runtime: Runtime) -> None:
        per_minute = self.settings.rate_limit_webhooks_per_ip
        if per_minute <= 0:
            return
        # This process's view of the address's refusals, shared in batches: no cache round trip per webhook.
        decision = runtime.limits.check(_refused_key(scope), limit=per_minute, window=_WINDOW_SECONDS)
        if not decision.allowed:
            seconds = max(1, math.ceil(decision.retry_after))
            raise _Reject(
                429, "rate_limited", f"too many refused webhooks from this address; retry in {seconds} s",
                {"Retry-After": str(seconds)},
            )  # fmt: skip

    async def _limit(self, runtime: Runtime, key: str, per_minute: int, whose: str) -> None:
        if per_minute <= 0:
            return
        try:
            decision = await runtime.cache.hit(key, limit=per_minute, window=_WINDOW_SECONDS)
        except Exception as exc:  # a cache outage must not take the API (or the webhooks) down
            log.warning("gateway.rate_limit_unavailable", error=type(exc).__name__)
            return
        if not decision.allowed:
            seconds = max(1, math.ceil(decision.retry_after))
            raise _Reject(
                429, "rate_limited", f"too many requests from this {whose}; retry in {seconds} s",
                {"Retry-After": str(seconds)},
            )  # fmt: skip

    async def _authenticate(self, scope: Scope, runtime: Runtime, *, required: bool) -> Principal | None:
        """The caller's principal from `Authorization: Bearer` or the access cookie."""
        authorization = _header(scope, b"authorization") or ""
        scheme, _, credential = authorization.partition(" ")
        cookies = _cookies(scope)
        method = "bearer"
        token = credential.strip() if scheme.lower() == "bearer" else ""
        if not token and not authorization and cookies.get(ACCESS_COOKIE):
            token, method = cookies[ACCESS_COOKIE], "cookie"
        if not token:
            if required:
                raise _Reject(401, "unauthorized", "authentication required", {"WWW-Authenticate": "Bearer"})
            return None
        try:
            principal = read_access_token(runtime.box.derive("jwt"), token)
            if await self._revoked(runtime, principal):
                raise Unauthorized("this session has ended; log in again")
        except Unauthorized as exc:
            if not required:
                return None  # a stale token on a public path (login, logout) is no reason to refuse it
            raise _Reject(
                401, "unauthorized", exc.message, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from exc
        # Cookies ride along with any request a foreign page makes; unsafe ones must prove they come from our page.
        cookie_unsafe = required and method == "cookie" and scope["method"] not in SAFE_METHODS
        if cookie_unsafe and not csrf_matches(cookies.get(CSRF_COOKIE), _header(scope, CSRF_HEADER.lower().encode())):
            raise _Reject(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header for a cookie session")
        state: dict[str, Any] = scope.setdefault("state", {})
        state["principal"] = principal
        state["auth_method"] = method
        return principal

    async def _revoked(self, runtime: Runtime, principal: Principal) -> bool:
        try:
            return await session_revoked(runtime.cache, principal.session_id)
        except Exception as exc:  # the token is short-lived and signed: accept it rather than fail every call
            log.warning("gateway.revocation_check_unavailable", error=type(exc).__name__)
            return False

    async def _bounded_body(self, scope: Scope, receive: Receive) -> Receive:
        """Read an API body up to the limit (413 beyond), then replay it to the route."""
        if not self.options.enforce_limits:
            return receive
        upload = scope["method"] == "POST" and _UPLOADS.match(scope["path"]) is not None
        limit = UPLOAD_BODY_BYTES if upload else self.settings.max_api_body_bytes
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _Reject(413, "payload_too_large", f"body larger than {limit} bytes")
        if upload:
            return _counted(receive, limit)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return receive
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Reject(413, "payload_too_large", f"body larger than {limit} bytes")
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect like the server would

        return replay

    def _with_security_headers(self, send: Send) -> Send:
        https = self._https

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                csp = next((v for k, v in headers if k.lower() == b"content-security-policy"), b"")
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                # A page meant to be framed (the agent widget) declares its own frame-ancestors; others may not be.
                if b"frame-ancestors" not in csp:
                    extra.append((b"x-frame-options", b"DENY"))
                if content_type.startswith(b"text/html"):
                    extra.append((b"content-security-policy", _CSP_HTML.encode()))
                if https:
                    extra.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
                headers += [(key, value) for key, value in extra if key not in present]
                message["headers"] = headers
            await send(message)

        return send_with_headers


class _UploadTooLarge(HTTPException):
    """An upload body grew past its bound while it streamed on (a 413)."""


def _counted(receive: Receive, limit: int) -> Receive:
    """`receive`, refusing the body (413: the app's error handler answers it, or `_pass` for another process)
    once more than `limit` bytes came."""
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise _UploadTooLarge(413, f"body larger than {limit} bytes")
        return message

    return counting
