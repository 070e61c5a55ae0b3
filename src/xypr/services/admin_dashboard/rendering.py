"""Templates, filters and the page route class of the dashboard: errors become pages, not JSON."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.templating import Jinja2Templates

from xypr.auth.cookies import CSRF_COOKIE
from xypr.auth.principal import Principal, Role
from xypr.backends.db.base import as_utc
from xypr.core.errors import Forbidden, Unauthorized, XyprError

__all__ = ["DASHBOARD_ROLES", "PageRoute", "login_redirect", "render", "templates", "viewer"]

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
DASHBOARD_ROLES = frozenset({Role.XYPR_ADMIN, Role.TENANT_ADMIN, Role.SUPERVISOR})


def _moment(value: datetime | float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return as_utc(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    return f"{seconds // 86400:.0f} d {seconds % 86400 // 3600:.0f} h"


def _ago(value: datetime | float | None) -> str:
    if value is None:
        return "never"
    moment = value.timestamp() if isinstance(value, datetime) else float(value)
    return _duration(time.time() - moment) + " ago"


templates.env.filters.update(moment=_moment, iso=_iso, duration=_duration, ago=_ago)
STATE_WORDS = {"green": "OK", "amber": "Warning", "red": "Down"}
templates.env.globals.update(state_word=STATE_WORDS, Role=Role)


def viewer(request: Request) -> Principal:
    """The signed-in person allowed on the dashboard (agents get the no-access page)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise Unauthorized("sign in to use the dashboard")
    if principal.role not in DASHBOARD_ROLES:
        raise Forbidden("no access")
    return principal


def login_redirect(request: Request) -> Response:
    """To the sign-in page, coming back here afterwards (htmx follows `HX-Redirect`)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request") and request.headers.get("hx-current-url"):
        current = request.headers["hx-current-url"]
        here = current.split("://", 1)[-1].split("/", 1)[-1]
        here = "/" + here
    target = f"/admin/login?next={quote(here, safe='')}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page (or partial) with what every template needs: who is looking, the CSRF token, the nav."""
    principal = getattr(request.state, "principal", None)
    context.setdefault("me", principal if isinstance(principal, Principal) else None)
    context.setdefault("csrf", request.cookies.get(CSRF_COOKIE, ""))
    context.setdefault("path", request.url.path)
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


class PageRoute(APIRoute):
    """A page: a `XyprError` becomes an error page (sign-in redirect for 401, no-access page for an agent)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler (which also runs the dependencies) to render errors as HTML."""
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized:
                return login_redirect(request)
            except Forbidden as exc:
                if exc.message == "no access":
                    return render(request, "no_access.html", status_code=403)
                return _error(request, 403, "Not allowed", exc.message)
            except XyprError as exc:
                title = {404: "Not found", 409: "Conflict", 503: "Unavailable"}.get(exc.status_code, "Error")
                return _error(request, exc.status_code, title, exc.message)

        return page


def _error(request: Request, status_code: int, title: str, message: str) -> Response:
    """A whole error page, or for an htmx action an alert in the page's `#flash` region."""
    if request.headers.get("hx-request"):
        response = render(request, "partials/flash.html", kind="error", title=title, message=message)
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "error.html", status_code=status_code, title=title, message=message)
