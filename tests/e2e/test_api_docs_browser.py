"""`/docs` in headless Chromium: every operation renders from packaged assets, with no request elsewhere."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import embedded_settings
from tests.support.bridge import running_bridge
from xypr.web.apidocs import DOCS_ASSETS_DIR

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
LOCAL = {"127.0.0.1", "localhost"}


@pytest.fixture
async def bridge_url(tmp_path: Path) -> AsyncIterator[str]:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        yield bridge.url


async def _open(url: str, screenshot: Path | None = None) -> tuple[list[str], list[str], str]:
    """Load `url`, refusing every request to another host; (outside requests, console errors, page text)."""
    from playwright.async_api import Route, async_playwright

    outside: list[str] = []
    errors: list[str] = []

    async def only_local(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL:
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            await page.route("**/*", only_local)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            await page.goto(url)
            await page.locator(".opblock").first.wait_for(timeout=30_000)
            if screenshot is not None:
                await page.screenshot(path=str(screenshot))
            text = await page.inner_text("body")
        finally:
            await browser.close()
    return outside, errors, text


async def test_docs_renders_every_operation_with_no_request_to_another_host(bridge_url: str, tmp_path: Path) -> None:
    outside, errors, text = await _open(f"{bridge_url}/docs", screenshot=tmp_path / "docs.png")

    assert outside == []
    assert errors == []
    for path in ("/state/mapping", "/tenants", "/auth/token", "/webhook/whatsapp"):
        assert path in text
    assert "Unable to render this definition" not in text


async def test_docs_assets_are_the_packaged_pinned_swagger_ui_5(bridge_url: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=bridge_url) as client:
        page = (await client.get("/docs")).text
        script = await client.get("/static/apidocs/swagger-ui-bundle.js")
        policy = (await client.get("/docs")).headers["content-security-policy"]
    assert 'src="/static/apidocs/swagger-ui-bundle.js"' in page
    assert "http" not in page.split("<body>")[0]  # no stylesheet or icon from elsewhere
    assert script.status_code == 200
    assert script.content == (DOCS_ASSETS_DIR / "swagger-ui-bundle.js").read_bytes()
    assert "https:" not in policy.split("img-src")[0]  # scripts and styles: this origin only
