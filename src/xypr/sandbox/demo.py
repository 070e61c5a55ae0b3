"""`xypr run --sandbox`: the Meta and Genesys emulators mounted beside Xypr, and a demo tenant wired to them.

The demo credentials below exist only inside the emulators; they are not secrets of anything real.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from xypr.app import AppPlan
from xypr.auth.models import User
from xypr.auth.service import create_admin
from xypr.config import Settings
from xypr.core.logging import get_logger
from xypr.core.secretbox import key_file
from xypr.runtime import Runtime
from xypr.sandbox import SANDBOX_KEY_FILE
from xypr.sandbox.genesys.app import create_genesys_app
from xypr.sandbox.meta.app import create_meta_app
from xypr.sandbox.page import create_sandbox_page_router
from xypr.tenants.models import Tenant
from xypr.tenants.service import create_tenant, parse_tenant_file

__all__ = [
    "DEMO_ADMIN_EMAIL",
    "DEMO_TEMPLATES",
    "DEMO_TENANT",
    "DEMO_USERS",
    "GENESYS_PREFIX",
    "META_PREFIX",
    "SANDBOX_LOGIN_CLIENT_ID",
    "prepare_sandbox",
    "register_login",
    "register_with_emulators",
    "sandbox_admin_password",
    "sandbox_master_key",
    "seed_templates",
]

log = get_logger(__name__)

META_PREFIX = "/sandbox/meta"
GENESYS_PREFIX = "/sandbox/genesys"

DEMO_TENANT: dict[str, Any] = {
    "name": "Sandbox Demo",
    "genesys": {
        "region": "usw2.pure.cloud",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-client-secret",
        "integration_id": "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11",
        "webhook_secret": "sandbox-webhook-secret-0123456789",
        "org_id": "sandbox-org",
    },
    "whatsapp": {
        "waba_id": "100000000000000",
        "phone_number_id": "100000000000001",
        "display_phone_number": "+1 555 0100",
        "access_token": "sandbox-whatsapp-access-token",
        "app_secret": "sandbox-app-secret",
        "verify_token": "sandbox-verify-token",
    },
}


# The sandbox page's template besides Meta's `hello_world`: parameters and quick-reply buttons, so the
# page's agent can play a template the customer answers (the widget's set is DEMO_TEMPLATES).
PAGE_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "order_shipped",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} is on its way and should arrive by {{3}}."},
            {"type": "FOOTER", "text": "Sandbox Demo"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Track my order"},
                    {"type": "QUICK_REPLY", "text": "Talk to an agent"},
                ],
            },
        ],
    },
]

# Xypr's OAuth client for user logins (authorization code + PKCE) in the emulated Genesys.
SANDBOX_LOGIN_CLIENT_ID = "xypr-sandbox-login"

# People of the demo organisation, one per Xypr role (their Genesys roles map to ours by default).
DEMO_USERS: list[dict[str, Any]] = [
    {"id": "7d0b7e1e-0000-4000-8000-000000000001", "name": "Ada Admin", "email": "ada@sandbox.example",
     "roles": ["Master Admin"], "permissions": ["admin"]},
    {"id": "7d0b7e1e-0000-4000-8000-000000000002", "name": "Sam Supervisor", "email": "sam@sandbox.example",
     "roles": ["Supervisor"], "permissions": ["conversation:communication:monitor"]},
    {"id": "7d0b7e1e-0000-4000-8000-000000000003", "name": "Alex Agent", "email": "alex@sandbox.example",
     "roles": ["Employee"], "permissions": ["conversation:message:view"]},
]  # fmt: skip


def sandbox_master_key(settings: Settings, *, create: bool) -> str | None:
    """The master key the sandbox keeps in the data folder when none is configured (None: no sandbox yet)."""
    return key_file(settings.data_dir / SANDBOX_KEY_FILE, create=create)


# The sandbox's Xypr administrator (the admin dashboard's sign-in); the password is made once per data folder.
DEMO_ADMIN_EMAIL = "admin@sandbox.example"


def sandbox_admin_password(settings: Settings) -> str:
    """The demo administrator's password, kept in the data folder (readable by its owner only)."""
    path = settings.data_dir / "sandbox-admin-password"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


async def register_with_emulators(
    meta: httpx.AsyncClient, genesys: httpx.AsyncClient, tenant: dict[str, Any], *, public_url: str
) -> None:
    """Tell the emulators about a tenant: its number (Meta) and its integration (Genesys)."""
    wa, gc = tenant["whatsapp"], tenant["genesys"]
    answer = await meta.post(
        "/_sandbox/numbers",
        json={
            "phone_number_id": wa["phone_number_id"],
            "display_phone_number": wa["display_phone_number"],
            "waba_id": wa["waba_id"],
            "access_token": wa["access_token"],
            "app_secret": wa["app_secret"],
            "verify_token": wa["verify_token"],
            "webhook_url": f"{public_url}/webhook/whatsapp",
        },
    )
    answer.raise_for_status()
    answer = await genesys.post(
        "/_sandbox/integrations",
        json={
            "integration_id": gc["integration_id"],
            "name": tenant["name"],
            "client_id": gc["client_id"],
            "client_secret": gc["client_secret"],
            "webhook_url": f"{public_url}/webhook/genesys",
            "webhook_secret": gc["webhook_secret"],
            "org_id": gc.get("org_id"),
        },
    )
    answer.raise_for_status()


async def register_login(genesys: httpx.AsyncClient, *, public_url: str, client_id: str) -> None:
    """Register Xypr's login client (public, PKCE) and the demo organisation's people with the emulated Genesys."""
    answer = await genesys.post(
        "/_sandbox/oauth/clients",
        json={
            "client_id": client_id,
            "name": "Xypr",
            # The browser login, and the agent widget's sign-in inside Genesys (implicit grant).
            "redirect_uris": [f"{public_url}/auth/genesys/callback", f"{public_url}/widget/signed-in"],
        },
    )
    answer.raise_for_status()
    for person in DEMO_USERS:
        answer = await genesys.post("/_sandbox/users", json={**person, "org_id": DEMO_TENANT["genesys"]["org_id"]})
        answer.raise_for_status()


def prepare_sandbox(settings: Settings, plan: AppPlan) -> Settings:
    """Mount the emulators and the sandbox page into `plan`; returns settings pointing Xypr at them."""
    public = settings.public_url.rstrip("/")
    updates: dict[str, Any] = {
        "meta_graph_url": public + META_PREFIX,
        "genesys_api_url": public + GENESYS_PREFIX,
        "genesys_login_url": public + GENESYS_PREFIX,
        "genesys_login_client_id": settings.genesys_login_client_id or SANDBOX_LOGIN_CLIENT_ID,
        # The emulated agent desktop frames the widget from this origin.
        "widget_frame_ancestors": ",".join(filter(None, [settings.widget_frame_ancestors, public])),
    }
    if not settings.master_key.get_secret_value():
        from pydantic import SecretStr

        updates["master_key"] = SecretStr(sandbox_master_key(settings, create=True) or "")
    settings = settings.model_copy(update=updates)

    meta_app = create_meta_app(base_url=public + META_PREFIX)
    genesys_app = create_genesys_app(base_url=public + GENESYS_PREFIX)
    plan.mounts[META_PREFIX] = meta_app
    plan.mounts[GENESYS_PREFIX] = genesys_app
    plan.sandbox_prefixes.append("/sandbox")
    plan.home = "/sandbox"
    plan.extra_routers.append(
        create_sandbox_page_router(
            meta_prefix=META_PREFIX,
            genesys_prefix=GENESYS_PREFIX,
            demo={
                "phone_number_id": DEMO_TENANT["whatsapp"]["phone_number_id"],
                "waba_id": DEMO_TENANT["whatsapp"]["waba_id"],
                "integration_id": DEMO_TENANT["genesys"]["integration_id"],
                "display_phone_number": DEMO_TENANT["whatsapp"]["display_phone_number"],
                "tenant_name": DEMO_TENANT["name"],
            },
        )
    )

    async def start(app: FastAPI, runtime: Runtime) -> None:
        await _ensure_demo_tenant(runtime)
        await _ensure_demo_admin(runtime, sandbox_admin_password(settings))
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=meta_app), base_url="http://meta") as meta,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=genesys_app), base_url="http://genesys") as gen,
        ):
            await register_with_emulators(meta, gen, DEMO_TENANT, public_url=public)
            await register_login(gen, public_url=public, client_id=settings.genesys_login_client_id)
            await seed_templates(meta, DEMO_TENANT["whatsapp"]["waba_id"])
        # Installed through the emulated Genesys API like a real onboarding would, once this server listens.
        installing.append(asyncio.create_task(_install_widget_when_listening(runtime)))
        log.info("sandbox.ready", page=f"{public}/sandbox", meta=public + META_PREFIX, genesys=public + GENESYS_PREFIX)

    installing: list[asyncio.Task[None]] = []

    async def stop(_app: FastAPI, _runtime: Runtime) -> None:
        for task in installing:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await meta_app.state.sandbox.aclose()
        await genesys_app.state.sandbox.aclose()

    plan.on_startup.append(start)
    plan.on_shutdown.append(stop)
    return settings


async def _ensure_demo_admin(runtime: Runtime, password: str) -> None:
    async with runtime.database.session() as session:
        exists = await session.scalar(select(User.id).where(User.external_id == DEMO_ADMIN_EMAIL))
    if exists is None:
        await create_admin(runtime.database, email=DEMO_ADMIN_EMAIL, password=password, name="Sandbox Admin")


# The demo WABA's templates: every state and form the widget's picker has to handle.
DEMO_TEMPLATES: list[dict[str, Any]] = [
    {"name": "order_update", "language": "en_US", "category": "UTILITY", "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
        {"type": "BODY", "text": "Hello {{1}}, your order {{2}} ships on {{3}}."},
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://shop.example/track/{{1}}"},
                                        {"type": "QUICK_REPLY", "text": "Talk to us"}]}]},
    {"name": "order_update", "language": "es", "category": "UTILITY", "components": [
        {"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} sale el {{3}}."}]},
    {"name": "invoice_ready", "language": "en_US", "category": "UTILITY", "components": [
        {"type": "HEADER", "format": "DOCUMENT"},
        {"type": "BODY", "text": "Your invoice {{1}} is attached."}]},
    {"name": "spring_sale", "language": "en_US", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Spring sale: {{1}} off everything."},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Show me"},
                                        {"type": "QUICK_REPLY", "text": "Not now"}]}]},
    {"name": "new_feature", "language": "en_US", "category": "MARKETING", "status": "PENDING",
     "components": [{"type": "BODY", "text": "Something new is coming."}]},
    {"name": "winback_offer", "language": "en_US", "category": "MARKETING", "status": "REJECTED",
     "components": [{"type": "BODY", "text": "We miss you! {{1}}"}]},
]  # fmt: skip


async def seed_templates(meta: httpx.AsyncClient, waba_id: str) -> None:
    """Give a WABA of the emulated Meta the demo templates (approved, pending and rejected)."""
    for template in [*PAGE_TEMPLATES, *DEMO_TEMPLATES]:
        answer = await meta.post("/_sandbox/templates", json={"waba_id": waba_id, **template})
        answer.raise_for_status()


async def _install_widget_when_listening(runtime: Runtime) -> None:
    from xypr.services.agent_widget.install import install_widget

    for _attempt in range(50):
        await asyncio.sleep(0.2)
        tenant = await runtime.tenants.by_phone_number_id(DEMO_TENANT["whatsapp"]["phone_number_id"])
        if tenant is None:
            continue
        try:
            await install_widget(runtime, tenant)
            return
        except Exception as exc:  # the server may not listen yet; a sandbox convenience, never fatal
            log.debug("sandbox.widget_install_retry", error=type(exc).__name__)
    log.warning("sandbox.widget_not_installed")


async def _ensure_demo_tenant(runtime: Runtime) -> None:
    number = DEMO_TENANT["whatsapp"]["phone_number_id"]
    async with runtime.database.session() as session:
        exists = await session.scalar(select(Tenant.id).where(Tenant.wa_phone_number_id == number))
    if exists is None:
        await create_tenant(runtime.database, runtime.box, parse_tenant_file(DEMO_TENANT))
        runtime.tenants.invalidate()
