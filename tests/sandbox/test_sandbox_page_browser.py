"""The sandbox page in headless Chromium, on both emulators (Xypr's part played by the test itself)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.sandbox.webhook_receiver import WebhookReceiver, serve
from xypr.sandbox.genesys import create_genesys_app
from xypr.sandbox.meta import create_meta_app
from xypr.sandbox.page import create_sandbox_page_router
from xypr.web import STATIC_PREFIX, static_files

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NUMBER = "100000000000001"
INTEGRATION = "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11"
TOKEN = "sandbox-whatsapp-access-token"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    receiver = WebhookReceiver()
    async with receiver.client() as webhooks:
        meta = create_meta_app(base_url="http://unused/sandbox/meta", http_client=webhooks, status_delay=0.01)
        genesys = create_genesys_app(base_url="http://unused/sandbox/genesys", http_client=webhooks)
        app = FastAPI()
        app.mount("/sandbox/meta", meta)
        app.mount("/sandbox/genesys", genesys)
        app.mount(STATIC_PREFIX, static_files())
        demo = {"phone_number_id": NUMBER, "integration_id": INTEGRATION, "tenant_name": "Sandbox Demo"}
        app.include_router(
            create_sandbox_page_router(meta_prefix="/sandbox/meta", genesys_prefix="/sandbox/genesys", demo=demo)
        )
        async with serve(app) as url:
            async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                await client.post(
                    "/sandbox/meta/_sandbox/numbers",
                    json={
                        "phone_number_id": NUMBER,
                        "display_phone_number": "+1 555 0100",
                        "waba_id": "100000000000000",
                        "access_token": TOKEN,
                        "app_secret": "app-secret",
                        "webhook_url": "http://xypr.test/webhook/whatsapp",
                    },
                )
                await client.post(
                    "/sandbox/genesys/_sandbox/integrations",
                    json={
                        "integration_id": INTEGRATION,
                        "name": "Sandbox Demo",
                        "client_id": "client",
                        "client_secret": "secret",
                        "webhook_url": "http://xypr.test/webhook/genesys",
                        "webhook_secret": "webhook-secret-0123456789",
                    },
                )
            yield url
        await meta.state.sandbox.aclose()


async def _act_as_xypr(url: str, kind: str, body: dict[str, Any]) -> None:
    """What Xypr would do: deliver to Genesys (`genesys`) or send on WhatsApp (`meta`)."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        if kind == "genesys":
            token = (
                await client.post(
                    "/sandbox/genesys/oauth/token", data={"grant_type": "client_credentials"}, auth=("client", "secret")
                )
            ).json()["access_token"]
            answer = await client.post(
                f"/sandbox/genesys/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        else:
            answer = await client.post(
                f"/sandbox/meta/v23.0/{NUMBER}/messages", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            )
        assert answer.status_code == 200, answer.text


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
async def test_customer_and_agent_can_talk_through_the_page(sandbox_url: str) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(sandbox_url) else outside.append(r.url))
            await page.goto(f"{sandbox_url}/sandbox")
            await expect(page).to_have_title("Xypr sandbox")
            await page.fill("#customer-wa-id", "16505551234")

            await page.fill("#customer-input", "Does it come in <b>blue</b>?")
            await page.click("#customer-send")
            await expect(page.locator("#customer-thread .row.own .bubble")).to_contain_text(
                "Does it come in <b>blue</b>?"
            )

            await _act_as_xypr(
                sandbox_url,
                "genesys",
                {
                    "channel": {
                        "from": {"id": "16505551234", "idType": "Phone", "firstName": "Sheena"},
                        "time": "2025-01-01T10:00:00.000Z",
                    },
                    "text": "Does it come in <b>blue</b>?",
                },
            )
            await expect(page.locator("#agent-thread .bubble").first).to_contain_text("Does it come in <b>blue</b>?")
            await expect(page.locator("#agent-customer")).to_have_value("16505551234")

            await page.fill("#agent-input", "Yes, in blue & green.")
            await page.click("#agent-send")
            await expect(page.locator("#agent-thread .row.own .bubble")).to_contain_text("Yes, in blue & green.")

            buttons = {
                "type": "button",
                "body": {"text": "Which colour?"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "blue", "title": "Blue"}}]},
            }
            await _act_as_xypr(
                sandbox_url,
                "meta",
                {"messaging_product": "whatsapp", "to": "16505551234", "type": "interactive", "interactive": buttons},
            )
            business = page.locator("#customer-thread .row:not(.own) .bubble")
            await expect(business).to_contain_text("Which colour?")
            await expect(business.locator(".tick.read")).to_have_count(1, timeout=5000)
            await business.locator(".chip").click()
            await expect(page.locator("#customer-thread .row.own .bubble")).to_have_count(2)
            await expect(page.locator("#customer-thread .row.own .bubble").last).to_contain_text("Blue")
            assert errors == []
            assert outside == []
        finally:
            await browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
async def test_a_hidden_tab_stops_polling_and_catches_up_when_shown(sandbox_url: str) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            polls: list[str] = []
            page.on("request", lambda r: polls.append(r.url) if "/_sandbox/received" in r.url else None)
            await page.goto(f"{sandbox_url}/sandbox")
            await expect(page.locator("#status-line")).to_contain_text("Live")
            # Headless tabs are never hidden: play what the browser does when the tab goes to the background.
            await page.evaluate(
                "() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
                " document.dispatchEvent(new Event('visibilitychange')); }"
            )
            await page.wait_for_timeout(1000)  # a poll already under way may still finish
            before = len(polls)
            await page.wait_for_timeout(2500)  # over three poll periods
            assert len(polls) == before

            await _act_as_xypr(
                sandbox_url,
                "genesys",
                {
                    "channel": {"from": {"id": "16505551234", "idType": "Phone"}, "time": "2025-01-01T10:00:00.000Z"},
                    "text": "Sent while the tab was hidden",
                },
            )
            await page.fill("#customer-wa-id", "16505551234")
            await page.evaluate(
                "() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
                " document.dispatchEvent(new Event('visibilitychange')); }"
            )
            await expect(page.locator("#agent-thread")).to_contain_text("Sent while the tab was hidden")
            assert len(polls) > before
        finally:
            await browser.close()
