"""Log in to a running bridge as any role, through the real login paths.

How it works:
- `xypr_admin`: a local administrator is created in the database (argon2id password) and logs in with the
  password grant of `POST /auth/token`.
- `tenant_admin` / `supervisor` / `agent` of a tenant: a user is created in the emulated Genesys, in the tenant's
  Genesys organisation, holding the Genesys role that the default role mapping turns into that Xypr role
  ("Master Admin", "Supervisor", "Employee"). The helper signs that user in at the emulator's `/oauth/authorize`
  with PKCE (S256), redeems the code for a Genesys user token, and trades it for Xypr tokens with the
  token-exchange grant of `POST /auth/token` (users/me → tenant by organisation → role).
  A tenant without a Genesys organisation id gets one (`org-<integration id>`) written to the database first.

Usage (permission matrices and the like):

    spec = tenant_spec()
    await bridge.add_tenant(spec)
    headers = await login_as(bridge, "agent", spec)      # {"Authorization": "Bearer …"}
    admin = await login_as(bridge, "xypr_admin")
    demo_agent = await login_as(bridge, Role.AGENT)      # no spec: the sandbox demo tenant
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select, update

from tests.support.bridge import Bridge
from xypr.auth.genesys import new_pkce
from xypr.auth.principal import Role
from xypr.auth.service import create_admin
from xypr.sandbox.demo import DEMO_TENANT
from xypr.tenants.models import Tenant

__all__ = [
    "GENESYS_ROLE_OF",
    "admin_credentials",
    "browser_login",
    "genesys_user",
    "genesys_user_token",
    "login_as",
    "tenant_org_id",
]

# The Genesys role that the default mapping (xypr.auth.roles.RoleMapping) turns into each tenant role.
GENESYS_ROLE_OF = {Role.TENANT_ADMIN: "Master Admin", Role.SUPERVISOR: "Supervisor", Role.AGENT: "Employee"}

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


async def tenant_org_id(bridge: Bridge, tenant: dict[str, Any] | None = None) -> str:
    """The Genesys organisation id of a tenant (given by its spec), set in the database when it has none."""
    spec = tenant or DEMO_TENANT
    given = spec["genesys"].get("org_id")
    if given:
        return str(given)
    integration_id = spec["genesys"]["integration_id"]
    async with bridge.runtime.database.session() as session:
        row = (
            await session.execute(
                select(Tenant.id, Tenant.genesys_org_id).where(Tenant.genesys_integration_id == integration_id)
            )
        ).one()
        if row.genesys_org_id:
            return str(row.genesys_org_id)
        org_id = f"org-{integration_id}"
        await session.execute(update(Tenant).where(Tenant.id == row.id).values(genesys_org_id=org_id))
    bridge.runtime.tenants.invalidate()
    return org_id


async def genesys_user(
    bridge: Bridge,
    org_id: str,
    *,
    roles: list[str] | None = None,
    permissions: list[str] | None = None,
    name: str = "Test Person",
) -> dict[str, Any]:
    """Create a user of a Genesys organisation in the emulator; returns it (with its `id`)."""
    tag = uuid.uuid4().hex[:8]
    answer = await bridge.genesys.post(
        "/_sandbox/users",
        json={"org_id": org_id, "name": f"{name} {tag}", "email": f"person-{tag}@example.test",
              "roles": roles or [], "permissions": permissions or []},
    )  # fmt: skip
    answer.raise_for_status()
    person: dict[str, Any] = answer.json()
    return person


async def genesys_user_token(bridge: Bridge, user_id: str) -> str:
    """Sign `user_id` in at the emulated Genesys with Xypr's login client and PKCE; returns their access token."""
    client_id = bridge.runtime.settings.genesys_login_client_id
    redirect_uri = f"{bridge.url}/auth/genesys/callback"
    pkce = new_pkce()
    state = secrets.token_urlsafe(8)
    approved = await bridge.genesys.post(
        "/oauth/authorize",
        data={"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state,
              "code_challenge": pkce.challenge, "code_challenge_method": "S256", "login": user_id},
    )  # fmt: skip
    assert approved.status_code == 302, approved.text
    query = parse_qs(urlsplit(approved.headers["location"]).query)
    assert query["state"] == [state]
    token = await bridge.genesys.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect_uri,
              "client_id": client_id, "code_verifier": pkce.verifier},
    )  # fmt: skip
    token.raise_for_status()
    return str(token.json()["access_token"])


async def browser_login(browser: httpx.AsyncClient, user_id: str, *, next_path: str = "/auth/info") -> httpx.Response:
    """A browser's Genesys login, redirect by redirect: `/auth/genesys/login` → the emulator's sign-in page
    (where `user_id` is chosen) → `/auth/genesys/callback`. Returns the callback's answer (303 + cookies on
    success). `browser` is an `httpx.AsyncClient` on the bridge URL; it keeps the cookies like a browser."""
    start = await browser.get("/auth/genesys/login", params={"next": next_path})
    assert start.status_code == 302, start.text
    authorize = urlsplit(start.headers["location"])
    params = {key: values[0] for key, values in parse_qs(authorize.query).items()}
    approved = await browser.post(authorize.path, data={**params, "login": user_id})
    assert approved.status_code == 302, approved.text
    callback = urlsplit(approved.headers["location"])
    return await browser.get(f"{callback.path}?{callback.query}")


async def admin_credentials(bridge: Bridge) -> tuple[str, str]:
    """A new Xypr administrator in the database: (email, password)."""
    email = f"admin-{uuid.uuid4().hex[:8]}@xypr.test"
    password = secrets.token_urlsafe(18)
    await create_admin(bridge.runtime.database, email=email, password=password, name="Test Admin")
    return email, password


async def login_as(bridge: Bridge, role: Role | str, tenant: dict[str, Any] | None = None) -> dict[str, str]:
    """Bearer headers of a fresh login as `role` (of `tenant`, a tenant spec; None = the demo tenant)."""
    role = Role(role)
    if role is Role.XYPR_ADMIN:
        email, password = await admin_credentials(bridge)
        form = {"grant_type": "password", "username": email, "password": password}
    else:
        org_id = await tenant_org_id(bridge, tenant)
        person = await genesys_user(bridge, org_id, roles=[GENESYS_ROLE_OF[role]], name=role.value)
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token": await genesys_user_token(bridge, person["id"])}
    answer: httpx.Response = await bridge.client.post("/auth/token", data=form)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert tokens["role"] == role.value, tokens
    return {"Authorization": f"Bearer {tokens['access_token']}"}
