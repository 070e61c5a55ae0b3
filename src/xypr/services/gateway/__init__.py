"""The API gateway: one entry for every HTTP service (authentication, limits, headers, CORS, routing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from xypr.config import Settings
from xypr.services.gateway.middleware import GatewayMiddleware, GatewayOptions
from xypr.services.gateway.paths import PathRules
from xypr.services.gateway.proxy import Upstreams

__all__ = ["install_gateway", "upstreams_of"]


def upstreams_of(service_urls: Mapping[str, str]) -> Upstreams:
    """The path prefixes of the services listed in `XYPR_SERVICE_URLS` (`{"auth": "http://…:3004"}`)."""
    from xypr.services.registry import SERVICES

    prefixes: dict[str, list[str]] = {}
    for name, url in service_urls.items():
        spec = SERVICES.get(name)
        if spec is None or not spec.paths:
            routable = sorted(n for n, s in SERVICES.items() if s.paths)
            raise ValueError(
                f"XYPR_SERVICE_URLS: {name!r} is not an HTTP service the gateway routes; one of {routable}"
            )
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"XYPR_SERVICE_URLS: the URL of {name!r} must start with http:// or https://")
        prefixes.setdefault(url, []).extend(spec.paths)
    return Upstreams.of(prefixes)


def install_gateway(
    app: FastAPI,
    settings: Settings,
    *,
    public_gateway: bool,
    sandbox_prefixes: Sequence[str] = (),
    remote_services: Mapping[str, str] | None = None,
) -> None:
    """Add the gateway middleware (and CORS on the public gateway) to `app`; call before the request-id one."""
    options = GatewayOptions(
        rules=PathRules.of(sandbox_prefixes=sandbox_prefixes, metrics_public=settings.metrics_public),
        enforce_limits=public_gateway,
        upstreams=upstreams_of(remote_services or {}),
    )
    app.add_middleware(GatewayMiddleware, settings=settings, options=options)
    origins = settings.cors_origin_list
    if public_gateway and origins:
        # Outside the gateway, so preflights are answered before authentication is asked for.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-CSRF-Token", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Retry-After"],
            max_age=600,
        )
