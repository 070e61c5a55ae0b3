"""The ASGI application: the gateway and any set of services in one process, plus the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xypr.backends.broker.base import Consumer
from xypr.backends.storage import create_object_store
from xypr.backends.storage.local import LocalObjectStore, create_media_router
from xypr.backends.unavailable import CONNECTION_FAILURES, backend_unavailable
from xypr.config import Settings
from xypr.core.correlation import sane_request_id
from xypr.core.errors import XyprError
from xypr.core.logging import get_logger
from xypr.monitoring.processes import keep_beating, new_process_record, stop_beating
from xypr.retry_parking import ParkingStore
from xypr.runtime import Runtime
from xypr.services import ops
from xypr.services.gateway import install_gateway
from xypr.services.gateway.paths import PathRules
from xypr.services.openapi import install_openapi
from xypr.services.registry import plain_routes_of, routers_of, stages_of
from xypr.stage import Parking, run_stage
from xypr.tenants.service import follow_tenant_changes
from xypr.web import STATIC_PREFIX, static_files
from xypr.web.apidocs import install_api_docs

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
    # Where `GET /` sends a browser (the sandbox page, the admin dashboard); None: no route at `/`.
    home: str | None = None


# Handlers at once per queue when `XYPR_WORKER_CONCURRENCY` is unset. A worker process waits on upstream
# calls mostly: at 100 ms per call 64 handlers cap it near 640 messages a second, and 256 measured 20-30 %
# more end to end with 100 ms upstream, nothing less without (docs/performance.md). A process that also
# answers HTTP keeps 64: there more handlers on the same event loop slowed the webhook answers.
WORKER_CONCURRENCY = 256
WORKER_CONCURRENCY_BESIDE_HTTP = 64


def worker_concurrency(settings: Settings, plan: AppPlan) -> int:
    """How many deliveries of each queue this process handles at once."""
    if settings.worker_concurrency is not None:
        return settings.worker_concurrency
    return WORKER_CONCURRENCY_BESIDE_HTTP if plan.http_services else WORKER_CONCURRENCY


class RequestIdMiddleware:
    """Gives every request an id (the caller's `X-Request-Id` or a new one), in logs and the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        request_id = sane_request_id(given.decode("latin-1"))
        # The handlers take the same id (`correlation_id(request)`): the events they publish carry it.
        scope.setdefault("state", {})["request_id"] = request_id

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


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method of the resource at `path`: of the routes with a literal path equal to it when there are
    any (`/dlq/replay` is its own resource, not an id of `/dlq/{id}`), else of every route whose template
    matches it. Included routers are walked through FastAPI's route contexts (they are routes of their own
    since FastAPI 0.165); mounted apps answer their own paths."""
    literal: set[str] = set()
    templated: set[str] = set()
    for context in iter_route_contexts(app.router.routes):
        route_path, methods = context.path, context.methods
        if not route_path or not methods:
            continue
        regex, _, convertors = compile_path(route_path)
        if regex.match(path):
            (templated if convertors else literal).update(methods)
    return sorted(literal or templated)


def _home_router(target: str) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        """A person opening the bare address lands on a page, not on a JSON 401."""
        return RedirectResponse(target, status_code=302)

    return router


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
            parking = Parking(ParkingStore(runtime.database), after=settings.park_after_seconds)
            for stage in stages_of(list(plan.worker_services), runtime):
                consumers.append(
                    await run_stage(
                        stage,
                        broker=runtime.broker,
                        policy=runtime.retry,
                        prefetch=worker_concurrency(settings, plan),
                        parking=parking,
                    )
                )
            log.info("xypr.started", http=list(plan.http_services), workers=list(plan.worker_services))
            yield
        finally:
            # All stages at once: each stops taking work and lets what it holds finish within the grace.
            await asyncio.gather(*(consumer.stop(grace=settings.shutdown_grace_seconds) for consumer in consumers))
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
        # /docs is served from packaged assets (install_api_docs), never from a CDN; no ReDoc.
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(XyprError)
    async def xypr_error(_request: Request, exc: XyprError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        return _error(400, "bad_request", f"{where}: {first['msg']}" if where else str(first["msg"]), field=where)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        code = codes.get(exc.status_code, "http_error")
        response = _error(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: `Allow` lists every method of the resource (Starlette names only its first route's).
            response.headers["Allow"] = ", ".join(_allowed_methods(request.app, request.url.path))
        return response

    def backend_failure(exc: Exception) -> JSONResponse | None:
        unavailable = backend_unavailable(exc)
        if unavailable is None:
            return None
        log.warning("request.backend_unavailable", error_type=type(exc).__name__, error=str(exc)[:200])
        return JSONResponse(unavailable.to_body(), status_code=unavailable.status_code, headers=unavailable.headers)

    async def connection_failure(request: Request, exc: Exception) -> JSONResponse:
        return backend_failure(exc) or await unexpected(request, exc)

    # Registered per type (not only under `Exception`, whose handler runs after Starlette re-raises): a
    # lost database, cache or broker connection is a 503 with Retry-After, wherever it surfaces.
    for failure in CONNECTION_FAILURES:
        app.add_exception_handler(failure, connection_failure)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Also the answer for failures raised in middleware (the rate limiter's cache, the gateway's
        # tenant lookup), which reach only this handler: an unreachable backend is still a 503.
        unavailable = backend_failure(exc)
        if unavailable is not None:
            return unavailable
        log.exception("request.unhandled", error_type=type(exc).__name__)
        return _error(500, "internal_error", "unexpected error; it has been logged")

    app.include_router(ops.router)
    if plan.home is not None:
        app.include_router(_home_router(plan.home))
    for router in [*routers_of(list(plan.http_services)), *plan.extra_routers]:
        app.include_router(router)
    # First in line: the signed webhooks skip FastAPI's route search and dependency solving.
    app.router.routes[:0] = plain_routes_of(list(plan.http_services))
    if local_store is not None:
        app.include_router(create_media_router(local_store))
    install_api_docs(app)  # its assets mount under /static, so before it
    app.mount(STATIC_PREFIX, static_files(), name="static")
    for prefix, sub in plan.mounts.items():
        app.mount(prefix, sub)
    install_gateway(
        app, settings, public_gateway=plan.public_gateway, sandbox_prefixes=plan.sandbox_prefixes,
        remote_services=plan.remote_services,
    )  # fmt: skip
    rules = PathRules.of(sandbox_prefixes=plan.sandbox_prefixes, metrics_public=settings.metrics_public)
    install_openapi(app, rules, limits=plan.public_gateway)
    app.add_middleware(RequestIdMiddleware)
    return app
