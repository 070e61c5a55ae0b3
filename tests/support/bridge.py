"""A running Xypr (every service, one process, real HTTP on 127.0.0.1) with the emulators mounted."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from fastapi import APIRouter

from tests.support.live import eventually, serve
from tests.support.moto import free_port
from xypr.app import AppPlan, create_app
from xypr.config import Settings
from xypr.runtime import Runtime
from xypr.sandbox.demo import DEMO_TENANT, GENESYS_PREFIX, META_PREFIX, prepare_sandbox, register_with_emulators
from xypr.services.registry import HTTP_SERVICES, WORKER_SERVICES
from xypr.tenants.service import create_tenant, parse_tenant_file

__all__ = ["Bridge", "eventually", "running_bridge", "tenant_spec"]

T = TypeVar("T")


def tenant_spec(suffix: str | None = None) -> dict[str, Any]:
    """A fresh tenant file with unique ids (for a second tenant beside the demo one)."""
    tag = suffix or uuid.uuid4().hex[:8]
    digits = str(int(uuid.uuid4().int % 10**12)).zfill(12)
    return {
        "name": f"Tenant {tag}",
        "genesys": {
            "region": "mypurecloud.ie",
            "client_id": f"client-{tag}",
            "client_secret": f"client-secret-{tag}",
            "integration_id": str(uuid.uuid4()),
            "webhook_secret": f"webhook-secret-{tag}-0123456789",
        },
        "whatsapp": {
            "waba_id": "2" + digits,
            "phone_number_id": "3" + digits,
            "display_phone_number": "+1 555 0199",
            "access_token": f"EAAG-{tag}",
            "app_secret": f"app-secret-{tag}",
            "verify_token": f"verify-{tag}",
        },
    }


@dataclass
class Bridge:
    """Handles on a running bridge: its URL, a client, the emulators' control clients, the runtime."""

    url: str
    client: httpx.AsyncClient
    meta: httpx.AsyncClient
    genesys: httpx.AsyncClient
    runtime: Runtime
    demo: dict[str, Any]

    async def add_tenant(self, spec: dict[str, Any]) -> str:
        """Create a tenant and register it with both emulators; returns its id."""
        tenant = await create_tenant(self.runtime.database, self.runtime.box, parse_tenant_file(spec))
        self.runtime.tenants.invalidate()
        await register_with_emulators(self.meta, self.genesys, spec, public_url=self.url)
        return tenant.id

    async def customer_says(
        self, wa_id: str, text: str, *, name: str = "Sheena Nelson", phone_number_id: str | None = None
    ) -> dict[str, Any]:
        """The customer writes on WhatsApp (the emulated Meta signs and posts the webhook)."""
        answer = await self.meta.post(
            f"/_sandbox/customers/{wa_id}/messages",
            json={"phone_number_id": phone_number_id or self.demo["whatsapp"]["phone_number_id"],
                  "text": text, "name": name},
        )  # fmt: skip
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    async def agent_says(self, to: str, text: str, *, integration_id: str | None = None) -> dict[str, Any]:
        """The agent answers in Genesys (the emulated Genesys signs and posts the outbound webhook)."""
        integration = integration_id or self.demo["genesys"]["integration_id"]
        answer = await self.genesys.post(
            f"/_sandbox/integrations/{integration}/agent/messages", json={"to": to, "text": text}
        )
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    async def genesys_received(self, kind: str = "message", integration_id: str | None = None) -> list[dict[str, Any]]:
        """What Xypr delivered to the emulated Genesys."""
        integration = integration_id or self.demo["genesys"]["integration_id"]
        answer = await self.genesys.get("/_sandbox/received", params={"integration_id": integration, "kind": kind})
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()
        return result

    async def whatsapp_sent(self, to: str | None = None, phone_number_id: str | None = None) -> list[dict[str, Any]]:
        """What Xypr sent through the emulated Graph API."""
        params = {"phone_number_id": phone_number_id or self.demo["whatsapp"]["phone_number_id"]}
        if to:
            params["to"] = to
        answer = await self.meta.get("/_sandbox/sent", params=params)
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()
        return result


@asynccontextmanager
async def running_bridge(
    settings: Settings, *, workers: bool = True, extra_routers: Sequence[APIRouter] = ()
) -> AsyncIterator[Bridge]:
    """Serve every service of Xypr with the sandbox on a free port until the block ends.

    `extra_routers` adds routes for a test (behind the gateway like every other route).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = settings.model_copy(update={"public_url": url, "port": port})
    plan = AppPlan(
        http_services=HTTP_SERVICES,
        worker_services=WORKER_SERVICES if workers else (),
        run_migrations=True,
        extra_routers=list(extra_routers),
    )
    settings = prepare_sandbox(settings, plan)
    app = create_app(settings, plan)
    async with (
        serve(app, port=port),
        httpx.AsyncClient(base_url=url, timeout=10) as client,
        httpx.AsyncClient(base_url=url + META_PREFIX, timeout=10) as meta,
        httpx.AsyncClient(base_url=url + GENESYS_PREFIX, timeout=10) as genesys,
    ):
        yield Bridge(url, client, meta, genesys, app.state.runtime, DEMO_TENANT)
