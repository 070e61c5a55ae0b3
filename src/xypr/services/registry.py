"""The services of ARCHITECTURE §2: their default ports, HTTP routers and queue stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from xypr.runtime import Runtime
from xypr.services.plain_route import PlainPost
from xypr.stage import Stage

__all__ = ["SERVICES", "ServiceSpec", "plain_routes_of", "routers_of", "stages_of"]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: where it listens alone, what it routes, what it consumes."""

    name: str
    port: int | None
    routers: Callable[[], list[APIRouter]] = field(default=lambda: [])
    # Routes served ahead of FastAPI's routing (services/plain_route.py); their routers document them.
    plain_routes: Callable[[], list[PlainPost]] = field(default=lambda: [])
    # URL path prefixes the service answers; the gateway proxies them when the service runs elsewhere.
    paths: tuple[str, ...] = ()
    stages: Callable[[Runtime], list[Stage[Any]]] | None = None
    built: bool = True


def _whatsapp_webhook() -> list[APIRouter]:
    from xypr.services.whatsapp_webhook.router import router

    return [router]


def _whatsapp_webhook_plain() -> list[PlainPost]:
    from xypr.services.whatsapp_webhook.router import plain_routes

    return plain_routes


def _genesys_webhook() -> list[APIRouter]:
    from xypr.services.genesys_webhook.router import router

    return [router]


def _genesys_webhook_plain() -> list[PlainPost]:
    from xypr.services.genesys_webhook.router import plain_routes

    return plain_routes


def _auth() -> list[APIRouter]:
    from xypr.services.auth.router import router

    return [router]


def _tenant() -> list[APIRouter]:
    from xypr.services.tenant.operations_router import router as operations
    from xypr.services.tenant.router import router

    return [router, operations]


def _admin_dashboard() -> list[APIRouter]:
    from xypr.services.admin_dashboard import api, pages

    return [pages.router, *api.routers()]


def _state_manager() -> list[APIRouter]:
    from xypr.services.state_manager.router import router

    return [router]


def _inbound_router() -> list[APIRouter]:
    from xypr.services.inbound_transformer.router import router

    return [router]


def _agent_widget() -> list[APIRouter]:
    from xypr.services.agent_widget.router import router

    return [router]


def _inbound(runtime: Runtime) -> list[Stage[Any]]:
    from xypr.services.inbound_transformer.worker import InboundTransformer

    return [InboundTransformer(runtime)]


def _outbound_router() -> list[APIRouter]:
    from xypr.services.outbound_transformer.router import router

    return [router]


def _outbound(runtime: Runtime) -> list[Stage[Any]]:
    from xypr.services.outbound_transformer.worker import OutboundTransformer

    return [OutboundTransformer(runtime)]


def _genesys_api(runtime: Runtime) -> list[Stage[Any]]:
    from xypr.services.genesys_api.worker import GenesysApi

    return [GenesysApi(runtime)]


def _whatsapp_api(runtime: Runtime) -> list[Stage[Any]]:
    from xypr.services.whatsapp_api.worker import WhatsAppApi

    return [WhatsAppApi(runtime)]


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("api-gateway", 3000),
        ServiceSpec(
            "whatsapp-webhook",
            3009,
            routers=_whatsapp_webhook,
            plain_routes=_whatsapp_webhook_plain,
            paths=("/webhook/whatsapp",),
        ),
        ServiceSpec(
            "genesys-webhook",
            3011,
            routers=_genesys_webhook,
            plain_routes=_genesys_webhook_plain,
            paths=("/webhook/genesys",),
        ),
        ServiceSpec(
            "inbound-transformer",
            3002,
            routers=_inbound_router,
            paths=("/transform/inbound",),
            stages=_inbound,
        ),
        ServiceSpec(
            "outbound-transformer",
            3003,
            routers=_outbound_router,
            paths=("/transform/outbound",),
            stages=_outbound,
        ),
        ServiceSpec("genesys-api", None, stages=_genesys_api),
        ServiceSpec("whatsapp-api", None, stages=_whatsapp_api),
        ServiceSpec("auth", 3004, routers=_auth, paths=("/auth",)),
        ServiceSpec("tenant", 3007, routers=_tenant, paths=("/tenants",)),
        ServiceSpec("state-manager", 3005, routers=_state_manager, paths=("/state",)),
        ServiceSpec(
            "admin-dashboard",
            3006,
            routers=_admin_dashboard,
            paths=("/admin", "/ops", "/messages", "/dlq", "/audit", "/users"),
        ),
        ServiceSpec("agent-widget", 3012, routers=_agent_widget, paths=("/widget",)),
    )
}

HTTP_SERVICES = (
    "whatsapp-webhook",
    "genesys-webhook",
    "auth",
    "inbound-transformer",
    "outbound-transformer",
    "tenant",
    "state-manager",
    "admin-dashboard",
    "agent-widget",
)
WORKER_SERVICES = ("inbound-transformer", "outbound-transformer", "genesys-api", "whatsapp-api")


def routers_of(names: list[str]) -> list[APIRouter]:
    """Every router of the named services (the gateway routes them all)."""
    return [router for name in names for router in SERVICES[name].routers()]


def plain_routes_of(names: list[str]) -> list[PlainPost]:
    """The routes of the named services that are served ahead of FastAPI's routing."""
    return [route for name in names for route in SERVICES[name].plain_routes()]


def stages_of(names: list[str], runtime: Runtime) -> list[Stage[Any]]:
    """Every queue stage of the named services."""
    return [stage for name in names if (factory := SERVICES[name].stages) for stage in factory(runtime)]
