"""The emulated Meta Graph API as a FastAPI app, mountable under any prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from xypr.sandbox.meta import control, graph
from xypr.sandbox.meta.errors import GraphError
from xypr.sandbox.meta.state import MetaSandbox

__all__ = ["create_meta_app"]


def create_meta_app(
    *,
    base_url: str,
    api_versions: tuple[str, ...] | None = None,
    status_delay: float = 0.05,
    status_sequence: tuple[str, ...] = ("sent", "delivered", "read"),
    webhook_attempts: int = 3,
    webhook_backoff: float = 0.2,
    webhook_timeout: float = 10.0,
    http_client: httpx.AsyncClient | None = None,
    history_limit: int = 100_000,
) -> FastAPI:
    """A Meta emulator reachable at `base_url`; `api_versions` None accepts any `vNN.N`."""
    sandbox = MetaSandbox(
        base_url=base_url,
        status_delay=status_delay,
        status_sequence=status_sequence,
        webhook_attempts=webhook_attempts,
        webhook_backoff=webhook_backoff,
        webhook_timeout=webhook_timeout,
        http_client=http_client,
        history_limit=history_limit,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Runs when served standalone; a parent app mounting this one should call `sandbox.aclose()`.
        yield
        await sandbox.aclose()

    app = FastAPI(title="Xypr sandbox: Meta Graph API", lifespan=lifespan, docs_url="/_sandbox/docs")
    app.state.sandbox = sandbox
    app.state.api_versions = frozenset(api_versions) if api_versions is not None else None
    # Order matters: `/_sandbox/…` and `/_media/…` would otherwise match `/{version}/{object_id}`.
    app.include_router(control.router)
    app.include_router(graph.media_router)
    app.include_router(graph.router)

    @app.exception_handler(GraphError)
    async def graph_error(_request: Request, exc: GraphError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def unknown_path(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (404, 405) and exc.detail in ("Not Found", "Method Not Allowed"):
            error = GraphError(2500, f"Unknown path components: {request.url.path}")
            return JSONResponse(error.body(), status_code=400)
        return await http_exception_handler(request, exc)

    return app
