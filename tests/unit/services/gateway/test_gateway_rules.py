"""The gateway's path rules, security headers, upstream matching and session cookie flags (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from xypr.auth.cookies import clear_session_cookies, set_session_cookies
from xypr.config import Settings
from xypr.services.gateway.middleware import GatewayMiddleware, GatewayOptions
from xypr.services.gateway.paths import PathKind, PathRules
from xypr.services.gateway.proxy import Upstreams

RULES = PathRules.of(sandbox_prefixes=["/sandbox"], metrics_public=True)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/health", PathKind.PROBE),
        ("/ready", PathKind.PROBE),
        ("/metrics", PathKind.PROBE),
        ("/webhook/whatsapp", PathKind.WEBHOOK),
        ("/webhook/genesys", PathKind.WEBHOOK),
        ("/docs", PathKind.PUBLIC),
        ("/openapi.json", PathKind.PUBLIC),
        ("/auth/login", PathKind.PUBLIC),
        ("/auth/token", PathKind.PUBLIC),
        ("/auth/refresh", PathKind.PUBLIC),
        ("/auth/logout", PathKind.PUBLIC),
        ("/auth/genesys/login", PathKind.PUBLIC),
        ("/auth/genesys/callback", PathKind.PUBLIC),
        ("/media/tenant/t/a.jpg", PathKind.PUBLIC),
        ("/sandbox", PathKind.SANDBOX),
        ("/sandbox/genesys/oauth/token", PathKind.SANDBOX),
        ("/auth/info", PathKind.PROTECTED),
        ("/auth/validate", PathKind.PROTECTED),
        ("/tenants", PathKind.PROTECTED),
        ("/state/stats", PathKind.PROTECTED),
        ("/sandboxes", PathKind.PROTECTED),
        ("/docsx", PathKind.PROTECTED),
        ("/", PathKind.PUBLIC),  # redirects a browser to the sandbox page or the admin dashboard
    ],
)
def test_path_kinds(path: str, kind: PathKind) -> None:
    assert RULES.kind(path) is kind


def test_metrics_need_a_principal_when_not_public() -> None:
    assert PathRules.of(sandbox_prefixes=[], metrics_public=False).kind("/metrics") is PathKind.PROTECTED


def test_sandbox_paths_are_only_public_when_the_sandbox_is_mounted() -> None:
    assert PathRules.of(sandbox_prefixes=[], metrics_public=True).kind("/sandbox/meta/x") is PathKind.PROTECTED


def test_upstreams_match_the_longest_prefix_on_segment_boundaries() -> None:
    upstreams = Upstreams.of({"http://auth:3004": ["/auth"], "http://tenant:3007": ["/tenants", "/auth/special"]})
    assert upstreams.match("/auth/token") == "http://auth:3004"
    assert upstreams.match("/auth/special/x") == "http://tenant:3007"
    assert upstreams.match("/tenants") == "http://tenant:3007"
    assert upstreams.match("/authx") is None
    assert upstreams.match("/webhook/whatsapp") is None


async def _headers_of(settings: Settings, path: str, inner_headers: dict[str, str]) -> dict[str, str]:
    """Run one request through the middleware around an app answering `inner_headers`; the response headers."""

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        response = Response(b"x", headers=inner_headers, media_type=inner_headers.get("content-type"))
        await response(scope, receive, send)

    middleware = GatewayMiddleware(
        inner, settings=settings, options=GatewayOptions(rules=RULES, enforce_limits=True, upstreams=Upstreams())
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return {key.decode(): value.decode() for key, value in start["headers"]}


async def test_json_answers_get_nosniff_no_referrer_and_no_framing() -> None:
    headers = await _headers_of(Settings(_env_file=None), "/health", {"content-type": "application/json"})  # type: ignore[call-arg]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in headers
    assert "strict-transport-security" not in headers


async def test_html_pages_get_a_content_security_policy() -> None:
    headers = await _headers_of(Settings(_env_file=None), "/health", {"content-type": "text/html; charset=utf-8"})  # type: ignore[call-arg]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "default-src 'self'" in headers["content-security-policy"]


async def test_a_page_declaring_its_frame_ancestors_may_be_framed_and_keeps_its_policy() -> None:
    widget_policy = "frame-ancestors https://apps.mypurecloud.ie"
    headers = await _headers_of(
        Settings(_env_file=None),  # type: ignore[call-arg]
        "/health",
        {"content-type": "text/html", "content-security-policy": widget_policy},
    )
    assert "x-frame-options" not in headers
    assert headers["content-security-policy"] == widget_policy


async def test_hsts_only_when_the_public_url_is_https() -> None:
    https = Settings(_env_file=None, public_url="https://xypr.example")  # type: ignore[call-arg]
    headers = await _headers_of(https, "/health", {"content-type": "application/json"})
    assert headers["strict-transport-security"].startswith("max-age=")


def _cookies(settings: Settings) -> list[str]:
    response = Response()
    set_session_cookies(response, settings, access_token="a", refresh_token="r", csrf_token="c")
    return [value.decode() for key, value in response.raw_headers if key == b"set-cookie"]


def test_session_cookies_are_httponly_samesite_lax_and_not_secure_over_http() -> None:
    access, refresh, csrf = _cookies(Settings(_env_file=None, public_url="http://127.0.0.1:3000"))  # type: ignore[call-arg]
    assert access.startswith("xypr_access=a;")
    assert "HttpOnly" in access
    assert "SameSite=lax" in access
    assert refresh.startswith("xypr_refresh=r;")
    assert "HttpOnly" in refresh
    assert "Path=/auth" in refresh
    assert csrf.startswith("xypr_csrf=c;")
    assert "HttpOnly" not in csrf
    assert all("Secure" not in cookie for cookie in (access, refresh, csrf))


def test_session_cookies_are_secure_when_the_public_url_is_https() -> None:
    cookies = _cookies(Settings(_env_file=None, public_url="https://xypr.example"))  # type: ignore[call-arg]
    assert all("Secure" in cookie and "SameSite=lax" in cookie for cookie in cookies)


def test_clearing_the_session_expires_every_cookie() -> None:
    response = Response()
    clear_session_cookies(response, Settings(_env_file=None))  # type: ignore[call-arg]
    cleared = [value.decode() for key, value in response.raw_headers if key == b"set-cookie"]
    assert len(cleared) == 3
    assert all("Max-Age=0" in cookie for cookie in cleared)
