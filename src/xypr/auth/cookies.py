"""Browser sessions: the cookie names and flags, and the double-submit CSRF check for cookie-authenticated calls."""

from __future__ import annotations

import hmac
import secrets

from starlette.responses import Response

from xypr.config import Settings

__all__ = [
    "ACCESS_COOKIE",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "LOGIN_STATE_COOKIE",
    "REFRESH_COOKIE",
    "SAFE_METHODS",
    "clear_session_cookies",
    "csrf_matches",
    "new_csrf_token",
    "set_session_cookies",
]

ACCESS_COOKIE = "xypr_access"
REFRESH_COOKIE = "xypr_refresh"
# Readable by the page's scripts (not HttpOnly): they echo it in the CSRF header.
CSRF_COOKIE = "xypr_csrf"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_STATE_COOKIE = "xypr_login_state"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# The refresh cookie only travels to the auth endpoints, never to the rest of the API.
_REFRESH_PATH = "/auth"


def new_csrf_token() -> str:
    """A fresh CSRF token for a browser session."""
    return secrets.token_urlsafe(32)


def csrf_matches(cookie_value: str | None, header_value: str | None) -> bool:
    """The double-submit check: the header repeats the cookie (a foreign site can set neither)."""
    if not cookie_value or not header_value:
        return False
    return hmac.compare_digest(cookie_value.encode(), header_value.encode())


def set_session_cookies(
    response: Response,
    settings: Settings,
    *,
    access_token: str,
    refresh_token: str,
    csrf_token: str,
) -> None:
    """Put a session in HttpOnly, SameSite=Lax cookies (Secure when the public URL is https)."""
    secure = settings.secure_cookies
    response.set_cookie(
        ACCESS_COOKIE, access_token, max_age=settings.access_token_ttl_seconds, path="/",
        httponly=True, secure=secure, samesite="lax",
    )  # fmt: skip
    response.set_cookie(
        REFRESH_COOKIE, refresh_token, max_age=settings.refresh_token_ttl_seconds, path=_REFRESH_PATH,
        httponly=True, secure=secure, samesite="lax",
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, csrf_token, max_age=settings.refresh_token_ttl_seconds, path="/",
        httponly=False, secure=secure, samesite="lax",
    )  # fmt: skip


def clear_session_cookies(response: Response, settings: Settings) -> None:
    """Remove every session cookie."""
    secure = settings.secure_cookies
    response.delete_cookie(ACCESS_COOKIE, path="/", httponly=True, secure=secure, samesite="lax")
    response.delete_cookie(REFRESH_COOKIE, path=_REFRESH_PATH, httponly=True, secure=secure, samesite="lax")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, samesite="lax")
