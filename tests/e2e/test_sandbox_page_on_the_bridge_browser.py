"""The sandbox page on a running Xypr (every service, both emulators): every kind of message, played from both panes.

Set `XYPR_SANDBOX_SCREENSHOTS=docs/screenshots` to refresh the documentation's screenshots from this run.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import embedded_settings
from tests.support.bridge import Bridge, running_bridge

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
CUSTOMER = "16505551234"
WAIT = 15_000  # ms: a message crosses the emulators, Xypr's queues and workers


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG the browser can decode (the thumbnail must show, not only be linked)."""
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n%%EOF\n"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running_bridge(embedded_settings(tmp_path)) as running:
        yield running


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    made = {
        "blender.png": _png(160, 120, (236, 112, 99)),
        "manual.png": _png(120, 160, (88, 141, 230)),
        "invoice.pdf": PDF,
    }
    for name, content in made.items():
        (tmp_path / name).write_bytes(content)
    return {name: tmp_path / name for name in made}


async def _loaded(image: Any) -> bool:
    """True once an <img> decoded real pixels (a broken URL leaves naturalWidth at 0)."""
    width: int = await image.evaluate("(img) => img.complete ? img.naturalWidth : 0")
    return width > 0


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
async def test_every_kind_of_message_from_each_pane_shows_in_the_other_as_media_or_options(
    bridge: Bridge, files: dict[str, Path]
) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 900})
            errors: list[str] = []
            outside: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("request", lambda r: None if r.url.startswith(bridge.url) else outside.append(r.url))
            await page.goto(f"{bridge.url}/sandbox")
            phone = page.locator(".customer-pane")
            agent = page.locator(".agent-pane")
            await page.fill("#customer-wa-id", CUSTOMER)
            await page.fill("#customer-name", "Sheena Nelson")

            # -- the customer: text, then a photo with a caption, as a thumbnail on the agent's side
            await page.fill("#customer-input", "Hi! My blender broke")
            await page.click("#customer-send")
            await expect(agent.locator(".row:not(.own)")).to_contain_text("Hi! My blender broke", timeout=WAIT)
            await page.set_input_files("#customer-file", files["blender.png"])
            await expect(page.locator("#customer-pending")).to_contain_text("blender.png")
            await page.fill("#customer-input", "It smokes")
            await page.click("#customer-send")
            thumb = agent.locator(".row:not(.own) img.thumb")
            await expect(thumb).to_have_count(1, timeout=WAIT)
            await expect(agent.locator(".row:not(.own)").last).to_contain_text("It smokes")
            assert await _eventually_loaded(page, thumb)
            await expect(phone.locator(".row.own img.thumb")).to_have_count(1)

            # -- the agent: an attachment, shown to the customer as a photo and to the agent as what they sent
            await page.set_input_files("#agent-file", files["manual.png"])
            await page.fill("#agent-input", "Here is the manual")
            await page.click("#agent-send")
            business_photo = phone.locator(".row:not(.own) img.thumb")
            await expect(business_photo).to_have_count(1, timeout=WAIT)
            assert await _eventually_loaded(page, business_photo)
            await expect(phone.locator(".row:not(.own)").last).to_contain_text("Here is the manual")
            sent_by_agent = agent.locator(".row.own").last
            await expect(sent_by_agent.locator("img.thumb")).to_have_count(1)
            await expect(sent_by_agent).to_contain_text("Delivered", timeout=WAIT)

            # -- the customer: a document, as a file name on the agent's side
            await page.set_input_files("#customer-file", files["invoice.pdf"])
            await page.click("#customer-send")
            await expect(agent.locator(".row:not(.own) .file-name").last).to_have_text("invoice.pdf", timeout=WAIT)

            # -- the agent: quick replies, offered as buttons the customer taps
            await agent.get_by_role("button", name="Quick replies").click()
            await page.fill("#quick-text", "How would you like to continue?")
            await page.fill("#quick-options", "Call me back\nKeep chatting")
            await page.click("#quick-send")
            await expect(agent.locator(".row.own").last.locator(".chip")).to_have_text(
                ["Call me back", "Keep chatting"]
            )
            offer = phone.locator(".row:not(.own)").last
            await expect(offer).to_contain_text("How would you like to continue?", timeout=WAIT)
            await offer.get_by_role("button", name="Keep chatting").click()
            await expect(agent.locator(".row:not(.own)").last).to_contain_text("Chose: Keep chatting", timeout=WAIT)
            await _screenshot(page, "sandbox")

            # -- the customer: a reply quoting the agent's message, and a reaction to it
            manual = phone.locator(".row:not(.own)", has_text="Here is the manual")
            await manual.get_by_role("button", name="Reply to").click()
            await expect(page.locator("#customer-reply")).to_contain_text("Here is the manual")
            await page.fill("#customer-input", "Thanks, that helps")
            await page.click("#customer-send")
            await expect(page.locator("#customer-reply")).to_be_hidden()
            await expect(phone.locator(".row.own").last.locator(".quote")).to_contain_text("Here is the manual")
            await expect(agent.locator(".row:not(.own)").last).to_contain_text(
                'Replying to: "Here is the manual"', timeout=WAIT
            )
            await manual.get_by_role("button", name="React to").click()
            await manual.get_by_role("button", name="React with \U0001f44d").click()
            await expect(manual.locator(".reaction")).to_have_text("\U0001f44d", timeout=WAIT)
            await expect(agent.locator(".row:not(.own)").last).to_contain_text("Reacted \U0001f44d", timeout=WAIT)

            # -- the customer: a location
            await phone.get_by_role("button", name="Send location").click()
            await page.fill("#location-name", "Philz Coffee")
            await page.click("#location-send")
            await expect(phone.locator(".row.own").last.locator(".place-name")).to_have_text("Philz Coffee")
            shown_location = agent.locator(".row:not(.own)").last
            await expect(shown_location).to_contain_text("Location: Philz Coffee", timeout=WAIT)
            # its maps address is a link the agent may open (nothing is requested until clicked)
            maps = shown_location.locator(".text a")
            await expect(maps).to_have_count(1)
            assert "37.44221" in (await maps.get_attribute("href") or "")
            assert await maps.get_attribute("rel") == "noopener noreferrer"

            # -- the agent: a template with parameters, rendered for the customer with its buttons
            await agent.get_by_role("button", name="Template").click()
            await page.select_option("#template-name", "order_shipped|en_US")
            await page.fill("#template-body-1", "Sheena")
            await page.fill("#template-body-2", "A-1042")
            await expect(page.locator("#template-preview")).to_contain_text("Hi Sheena, your order A-1042")
            await page.click("#template-send")
            template = phone.locator(".row:not(.own)").last
            await expect(template).to_contain_text("Hi Sheena, your order A-1042 is on its way", timeout=WAIT)
            await expect(template.locator(".template-header")).to_have_text("Order A-1042")
            await expect(template.locator(".chip")).to_have_text(["Track my order", "Talk to an agent"])
            shown_to_agent = agent.locator(".row.own").last
            await expect(shown_to_agent).to_contain_text("Template \u00b7 order_shipped")
            await expect(shown_to_agent.locator(".params")).to_contain_text("{{2}} = A-1042")

            await _assert_following_the_newest(page)

            await _screenshot(page, "sandbox-dark", dark=True)
            # -- 400 px wide: stacked panes, nothing wider than the window
            await page.set_viewport_size({"width": 400, "height": 860})
            widths = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert widths[0] <= widths[1], widths
            await expect(page.locator("#customer-send")).to_be_visible()
            await _assert_following_the_newest(page)
            await _screenshot(page, "sandbox-400px")
            await page.locator("#agent-send").scroll_into_view_if_needed()
            await expect(page.locator("#agent-send")).to_be_visible()
            await _screenshot(page, "sandbox-400px-agent")

            assert errors == []
            assert outside == []
        finally:
            await browser.close()


async def _assert_following_the_newest(page: Any) -> None:
    """Each thread scrolls inside its pane (it does not grow the page) and shows its newest message."""
    for thread in ("#customer-thread", "#agent-thread"):
        await page.wait_for_timeout(100)
        height, top, visible = await page.eval_on_selector(
            thread, "(t) => [t.scrollHeight, t.scrollTop, t.clientHeight]"
        )
        assert visible < height, (thread, visible, height)
        assert height - top - visible < 48, (thread, height, top, visible)


async def _eventually_loaded(page: Any, image: Any) -> bool:
    for _ in range(50):
        if await _loaded(image):
            return True
        await page.wait_for_timeout(100)
    return False


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
async def test_both_panes_follow_the_customer_picked_in_either(bridge: Bridge) -> None:
    from playwright.async_api import async_playwright, expect

    await bridge.customer_says(CUSTOMER, "I am Sheena", name="Sheena Nelson")
    await bridge.customer_says("447700900123", "I am Tom", name="Tom Jones")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 900})
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            await page.goto(f"{bridge.url}/sandbox")
            await page.fill("#customer-wa-id", CUSTOMER)
            await page.dispatch_event("#customer-wa-id", "change")
            await expect(page.locator("#agent-customer")).to_be_visible(timeout=WAIT)
            await expect(page.locator("#agent-customer option")).to_have_count(2, timeout=WAIT)
            await expect(page.locator("#agent-thread")).to_contain_text("I am Sheena", timeout=WAIT)

            await page.select_option("#agent-customer", "447700900123")

            await expect(page.locator("#customer-wa-id")).to_have_value("447700900123")
            await expect(page.locator("#customer-name")).to_have_value("Tom Jones")
            await expect(page.locator("#customer-thread")).to_contain_text("I am Tom")
            await expect(page.locator("#customer-thread")).not_to_contain_text("I am Sheena")
            await expect(page.locator("#agent-thread")).to_contain_text("I am Tom")
            await expect(page.locator("#agent-thread")).not_to_contain_text("I am Sheena")

            await page.fill("#customer-wa-id", CUSTOMER)
            await page.dispatch_event("#customer-wa-id", "change")
            await expect(page.locator("#agent-customer")).to_have_value(CUSTOMER)
            await expect(page.locator("#agent-thread")).to_contain_text("I am Sheena")
            assert errors == []
        finally:
            await browser.close()


async def _screenshot(page: Any, name: str, *, dark: bool = False) -> None:
    """A screenshot for the docs, when asked for (light, or dark)."""
    folder = os.environ.get("XYPR_SANDBOX_SCREENSHOTS")
    if not folder:
        return
    if dark:
        await page.emulate_media(color_scheme="dark")
    await page.wait_for_timeout(400)  # let the last thumbnails paint
    await page.screenshot(path=str(Path(folder) / f"{name}.png"))
    await page.emulate_media(color_scheme="light")
