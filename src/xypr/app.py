"""The ASGI application: the gateway and any set of services in one process, plus the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xypr.backends.broker.base import Consumer
from xypr.backends.storage import create_object_store
from xypr.backends.storage.local import LocalObjectStore, create_media_router
from xypr.config import Settings
from xypr.core.errors import XyprError
from xypr.core.logging import get_logger
from xypr.monitoring.processes import keep_beating, new_process_record, stop_beating
from xypr.runtime import Runtime
from xypr.services import ops
from xypr.services.gateway import install_gateway
from xypr.services.registry import routers_of, stages_of
from xypr.stage import run_stage
from xypr.tenants.service import follow_tenant_changes
from xypr.web import STATIC_PREFIX, static_files

__all__ = ["AppPlan", "create_app"]

log = get_logger(__name__)

StartupHook = Callable[[FastAPI, Runtime], Awaitable[None]]


@dataclass(slots=True)
class AppPlan:
    """What one process runs: HTTP services, worker services, and start-up hooks (sandbox, demo tenant)."""

    http_services: Sequence[str] = ()
    worker_services: Sequence[str] = ()
    run_migrations: bool = False
    worker_index: int = 0
    worker_count: int = 1
    on_startup: list[StartupHook] = field(default_factory=list)
    on_shutdown: list[StartupHook] = field(default_factory=list)
    mounts: dict[str, ASGIApp] = field(default_factory=dict)
    extra_routers: list[APIRouter] = field(default_factory=list)
    # The public gateway rate-limits, caps bodies, answers CORS and proxies `remote_services`
    # ({service name: base URL}); a service running behind it only authenticates.
    public_gateway: bool = True
    remote_services: dict[str, str] = field(default_factory=dict)
    # Paths of the emulators and the sandbox page: the outside world, neither authenticated nor limited.
    sandbox_prefixes: list[str] = field(default_factory=list)


class RequestIdMiddleware:
    """Gives every request an id (the caller's `X-Request-Id` or a new one), in logs and the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
        request_id = request_id or uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _process_kind(plan: AppPlan) -> str:
    if plan.http_services and plan.public_gateway:
        return "gateway"
    return "http" if plan.http_services else "worker"


def _process_name(plan: AppPlan) -> str:
    if plan.http_services and plan.public_gateway:
        return "api-gateway + workers" if plan.worker_services else "api-gateway"
    return ", ".join([*plan.http_services, *(s for s in plan.worker_services if s not in plan.http_services)]) or "ops"


def create_app(settings: Settings, plan: AppPlan) -> FastAPI:
    """Build the app for `plan`; backends open in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(
            settings,
            run_migrations=plan.run_migrations,
            worker_index=plan.worker_index,
            worker_count=plan.worker_count,
            store=local_store,
        )
        app.state.runtime = runtime
        # Every process forgets its cached tenants as soon as any process changes one.
        tenant_changes = asyncio.create_task(follow_tenant_changes(runtime.cache, runtime.tenants))
        # The overview of the admin dashboard lists every process from these heartbeats.
        me = new_process_record(
            name=_process_name(plan), kind=_process_kind(plan), index=plan.worker_index, count=plan.worker_count
        )
        heartbeat = asyncio.create_task(keep_beating(runtime.cache, me))
        consumers: list[Consumer] = []
        try:
            for hook in plan.on_startup:
                await hook(app, runtime)
            for stage in stages_of(list(plan.worker_services), runtime):
                consumers.append(
                    await run_stage(
                        stage, broker=runtime.broker, policy=runtime.retry, prefetch=settings.worker_concurrency
                    )
                )
            log.info("xypr.started", http=list(plan.http_services), workers=list(plan.worker_services))
            yield
        finally:
            for consumer in consumers:
                await consumer.stop()
            for hook in plan.on_shutdown:
                await hook(app, runtime)
            await stop_beating(runtime.cache, me, heartbeat)
            tenant_changes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tenant_changes
            await runtime.close()

    # The embedded object store serves its signed media URLs from this app (`GET /media/…`).
    local_store: LocalObjectStore | None = None
    if not settings.s3_endpoint and settings.master_key.get_secret_value():
        store = create_object_store(settings)
        local_store = store if isinstance(store, LocalObjectStore) else None

    app = FastAPI(
        title="Xypr",
        version="0.1.0",
        summary="WhatsApp Business Cloud API ↔ Genesys Cloud Open Messaging bridge",
        lifespan=lifespan,
    )

    @app.exception_handler(XyprError)
    async def xypr_error(_request: Request, exc: XyprError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        return _error(400, "bad_request", f"{where}: {first['msg']}" if where else str(first["msg"]), field=where)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.unhandled", error_type=type(exc).__name__)
        return _error(500, "internal_error", "unexpected error; it has been logged")

    app.include_router(ops.router)
    for router in [*routers_of(list(plan.http_services)), *plan.extra_routers]:
        app.include_router(router)
    if local_store is not None:
        app.include_router(create_media_router(local_store))
    app.mount(STATIC_PREFIX, static_files(), name="static")
    for prefix, sub in plan.mounts.items():
        app.mount(prefix, sub)
    install_gateway(
        app, settings, public_gateway=plan.public_gateway, sandbox_prefixes=plan.sandbox_prefixes,
        remote_services=plan.remote_services,
    )  # fmt: skip
    app.add_middleware(RequestIdMiddleware)
    return app
