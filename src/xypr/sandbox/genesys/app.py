"""The emulated Genesys Cloud (login + Open Messaging API) as a FastAPI app, mountable under any prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from xypr.sandbox.genesys import agent, api, attachments, control, integrations, login
from xypr.sandbox.genesys.errors import GenesysError, not_found
from xypr.sandbox.genesys.state import GenesysSandbox

__all__ = ["create_genesys_app"]


def create_genesys_app(
    *,
    base_url: str,
    token_ttl: int = 86400,
    webhook_retries: int = 5,
    webhook_backoff: float = 0.2,
    webhook_timeout: float = 10.0,
    http_client: httpx.AsyncClient | None = None,
    history_limit: int = 100_000,
) -> FastAPI:
    """A Genesys Cloud emulator reachable at `base_url` (serves both the login and the API host)."""
    sandbox = GenesysSandbox(
        base_url=base_url,
        token_ttl=token_ttl,
        webhook_retries=webhook_retries,
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

    app = FastAPI(title="Xypr sandbox: Genesys Cloud", lifespan=lifespan, docs_url="/_sandbox/docs")
    app.state.sandbox = sandbox
    app.state.agent_attachments = attachments.AgentAttachments(base_url)
    app.include_router(control.router)
    app.include_router(attachments.router)
    app.include_router(api.router)
    app.include_router(integrations.router)
    app.include_router(integrations.control_router)
    app.include_router(login.router)
    app.include_router(login.control_router)
    app.include_router(agent.router)
    app.include_router(agent.control_router)

    @app.exception_handler(GenesysError)
    async def genesys_error(_request: Request, exc: GenesysError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def unknown_path(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and exc.detail == "Not Found":
            error = not_found(f"Resource {request.url.path}")
            return JSONResponse(error.body(), status_code=404)
        return await http_exception_handler(request, exc)

    return app
