"""`GET /` in a browser leads to a page: the sandbox in `make run`, the admin dashboard otherwise — never a 401."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import embedded_settings
from tests.support.bridge import running_bridge
from tests.support.live import serve
from xypr.app import AppPlan, create_app
from xypr.services.gateway.paths import PathKind, PathRules
from xypr.services.registry import HTTP_SERVICES


def test_the_bare_address_is_public_for_the_gateway_and_nothing_under_it_becomes_so() -> None:
    rules = PathRules.of(sandbox_prefixes=(), metrics_public=True)
    assert rules.kind("/") is PathKind.PUBLIC
    assert rules.kind("/tenants") is PathKind.PROTECTED
    assert rules.kind("/state/stats") is PathKind.PROTECTED


async def test_with_the_sandbox_slash_redirects_to_the_sandbox_page(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        home = await bridge.client.get("/")
        assert home.status_code == 302
        assert home.headers["location"] == "/sandbox"
        page = await bridge.client.get("/", follow_redirects=True)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")


async def test_without_the_sandbox_slash_redirects_to_the_admin_dashboard(tmp_path: Path) -> None:
    plan = AppPlan(http_services=HTTP_SERVICES, run_migrations=True, home="/admin")
    async with serve(create_app(embedded_settings(tmp_path), plan)) as url, httpx.AsyncClient(base_url=url) as client:
        home = await client.get("/")
        assert home.status_code == 302
        assert home.headers["location"] == "/admin"


async def test_a_service_behind_the_gateway_has_no_home(tmp_path: Path) -> None:
    plan = AppPlan(http_services=("auth",), public_gateway=False)
    async with serve(create_app(embedded_settings(tmp_path), plan)) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/")).status_code in (401, 404)
