"""A POST route served by a plain Starlette endpoint, ahead of FastAPI's routing (the signed webhooks).

FastAPI's per-request work (walking the included routers twice to find the route, solving the endpoint's
dependencies, its telemetry scope) costs more CPU than a webhook's own checks. A `PlainPost` sits first in
the app's routes: one string comparison finds it, and its endpoint takes the Starlette `Request` and answers
a `Response`. Errors it raises reach the app's exception handlers exactly as a FastAPI route's do (the same
`ExceptionMiddleware` is above both). The FastAPI route of the same path and endpoint stays in place: it
documents the operation in the OpenAPI document and answers the path's other methods (and their 405).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, request_response
from starlette.types import Receive, Scope, Send

__all__ = ["PlainPost"]

Endpoint = Callable[[Request], Awaitable[Response]]


def _route_path(scope: Scope) -> str:
    """The path below the app's root path (which an ASGI server may include in `path`), as Starlette routes."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


class PlainPost(BaseRoute):
    """`POST path` (that exact path) straight to `endpoint`; every other request is not this route's."""

    def __init__(self, path: str, endpoint: Endpoint) -> None:
        self.path = self.path_format = path
        self.endpoint = endpoint
        self.name = endpoint.__name__
        self.include_in_schema = False
        self.app = request_response(endpoint)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """FULL for a POST of exactly this path, else NONE (never PARTIAL: other methods go to the FastAPI
        route of the path, which answers them as before)."""
        if scope["type"] == "http" and scope["method"] == "POST" and _route_path(scope) == self.path:
            return Match.FULL, {"endpoint": self.endpoint, "path_params": {}}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Not named for URL building (the FastAPI route of the same path is)."""
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the endpoint."""
        await self.app(scope, receive, send)
