"""The agent widget in headless Chromium, on the emulated Genesys agent desktop, against the whole bridge.

The desktop frames the widget installed through the emulated Genesys API, with Genesys's interpolated
URL, and answers the Client App SDK's messages; the agent signs in once, on the desktop.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
import time
import zlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests.conftest import embedded_settings
from tests.support.bridge import Bridge, eventually, running_bridge, tenant_spec
from xypr.backends.db.base import utcnow
from xypr.state.models import Conversation, Message

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CUSTOMER = "16505551234"


def _png(width: int = 160, height: int = 110) -> bytes:
    """The customer's photo: a small gradient PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\x00" + b"".join(bytes((40 + x, 120 + y // 2, 200 - x // 2)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = _png()


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    settings = embedded_settings(tmp_path, widget_poll_seconds=0.25)
    async with running_bridge(settings) as running:
        await eventually(lambda: _widget_installed(running), within=20)
        for path in ("/widget", "/static/widget/widget.js", "/static/vendor/purecloud-client-app-sdk-2.6.10.min.js"):
            (await running.client.get(path)).raise_for_status()  # a warm process, as in production
        yield running


async def _widget_installed(bridge: Bridge) -> bool | None:
    apps = (await bridge.genesys.get("/_sandbox/client-apps")).json()
    return True if any(app["intendedState"] == "ENABLED" for app in apps) else None


async def _genesys_conversation(bridge: Bridge, wa_id: str) -> str:
    """The Genesys conversation id of a customer, once Xypr has recorded it too."""

    async def known() -> str | None:
        async with bridge.runtime.database.session() as session:
            value = await session.scalar(
                select(Conversation.genesys_conversation_id).where(Conversation.wa_id == wa_id)
            )
        return value

    return await eventually(known, within=20)


async def _set_last_customer_message(bridge: Bridge, wa_id: str, age: timedelta) -> None:
    """The injected clock: the customer's last message is `age` old."""
    async with bridge.runtime.database.session() as session:
        await session.execute(
            update(Conversation).where(Conversation.wa_id == wa_id).values(last_customer_message_at=utcnow() - age)
        )


async def _customer_media(bridge: Bridge) -> str:
    answer = await bridge.meta.post(
        "/_sandbox/media",
        files={"file": ("photo.png", PNG, "image/png")},
        data={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"]},
    )
    answer.raise_for_status()
    return str(answer.json()["id"])


async def _customer_sends(bridge: Bridge, wa_id: str, **message: Any) -> str:
    answer = await bridge.meta.post(
        f"/_sandbox/customers/{wa_id}/messages",
        json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "name": "Sheena Nelson", **message},
    )
    answer.raise_for_status()
    return str(answer.json()["wamid"])


class Browser:
    """Chromium with the test's rules: no console errors, no request leaving 127.0.0.1."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.refused: list[tuple[int, str]] = []  # responses of 400 and more

    async def __aenter__(self) -> Any:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        self.context = await self._context()
        return self

    async def _context(self) -> Any:
        context = await self._browser.new_context(viewport={"width": 1200, "height": 860})

        def on_request(request: Any) -> None:
            host = request.url.split("/")[2].split(":")[0] if "://" in request.url else ""
            if request.url.startswith(("http://", "https://")) and host not in ("127.0.0.1", "localhost"):
                self.foreign.append(request.url)

        context.on("request", on_request)
        context.on("response", lambda r: self.refused.append((r.status, r.url)) if r.status >= 400 else None)
        return context

    async def page(self, *, another_person: bool = False) -> Any:
        """A tab; `another_person`: in a browser profile of its own (no shared Genesys session)."""
        context = await self._context() if another_person else self.context
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        return page

    async def __aexit__(self, *exc: object) -> None:
        await self._browser.close()
        await self._playwright.stop()


async def _desktop(
    browser: Browser, bridge: Bridge, conversation_id: str, *, who: str = "Alex Agent", lang: str = ""
) -> Any:
    page = await browser.page(another_person=who != "Alex Agent")
    query = f"conversationId={conversation_id}" + (f"&lang={lang}" if lang else "")
    await page.goto(f"{bridge.url}/sandbox/genesys/desktop?{query}")
    await page.get_by_role("button", name=who).click()  # the one sign-in: into Genesys, on the desktop
    await page.locator("#widget-frame").wait_for(state="attached")
    return page


# Records the tick of the bubble containing a text at every change of the thread.
TICK_WATCHER = """(text) => {
  window.tickLog = [];
  new MutationObserver(() => {
    document.querySelectorAll('.bubble.out').forEach((b) => {
      if (b.textContent.includes(text)) window.tickLog.push(b.querySelector('.tick').className);
    });
  }).observe(document.getElementById('thread'), {subtree: true, childList: true, attributes: true});
}"""


def _tick_rank(classes: str) -> int:
    for rank, name in enumerate(("pending", "sent", "delivered", "read")):
        if f"tick {name}" in classes:
            return rank
    return 9 if "failed" in classes else -1


@pytest.mark.skipif(shutil.which("chromium") is None and not Path(CHROMIUM).exists(), reason="no Chromium")
async def test_widget_shows_customer_history_live_ticks_quick_answers_and_stops(bridge: Bridge) -> None:
    from playwright.async_api import expect

    first = await _customer_sends(bridge, CUSTOMER, type="text", text="Hi, where is my order?")
    await _customer_sends(bridge, CUSTOMER, type="image", media_id=await _customer_media(bridge), caption="The box")
    await _customer_sends(
        bridge, CUSTOMER, type="location",
        content={"latitude": 52.3702, "longitude": 4.8952, "name": "Dam Square", "address": "Amsterdam"},
    )  # fmt: skip
    conversation_id = await _genesys_conversation(bridge, CUSTOMER)
    await bridge.agent_says(CUSTOMER, "It ships tomorrow.")
    sent = await eventually(lambda: _first_wamid(bridge))
    await _customer_sends(bridge, CUSTOMER, type="text", text="Great, thanks!", context_id=sent)
    await _customer_sends(bridge, CUSTOMER, type="reaction", content={"message_id": sent, "emoji": "👍"})
    await _customer_sends(bridge, CUSTOMER, type="text", text="And the colour?", context_id=first)
    await eventually(lambda: _inbound_rows(bridge, 6))

    async with Browser() as browser:
        page = await _desktop(browser, bridge, conversation_id)
        widget = page.frame_locator("#widget-frame")
        # Within 3 s of the desktop framing it: page, silent sign-in, token exchange, the view.
        await expect(widget.locator(".customer-name")).to_have_text("Sheena Nelson", timeout=3000)
        await expect(widget.get_by_role("button", name="Sign in with Genesys Cloud")).to_be_hidden()
        await expect(widget.locator(".wa-id")).to_have_text(f"+{CUSTOMER}")

        thread = widget.locator("#thread")
        await expect(thread.locator(".bubble.in").first).to_contain_text("Hi, where is my order?")
        await expect(thread.locator("img.thumb")).to_have_attribute("src", re.compile(r"/media/"))
        await expect(thread.get_by_role("link", name="Open the location in a map: Dam Square")).to_have_attribute(
            "href", "https://www.google.com/maps/search/?api=1&query=52.3702,4.8952"
        )
        agent_bubble = thread.locator(".bubble.out", has_text="It ships tomorrow.")
        await expect(agent_bubble.locator(".reaction.customer")).to_have_text("👍")
        await expect(thread.locator(".bubble.in", has_text="Great, thanks!").locator(".quote")).to_have_text(
            "It ships tomorrow."
        )
        await expect(thread.locator(".bubble.in", has_text="And the colour?").locator(".quote")).to_have_text(
            "Hi, where is my order?"
        )
        await expect(agent_bubble.locator(".tick")).to_have_class(re.compile(r"\bread\b"))

        # Live: a customer message appears without reload.
        before = time.monotonic()
        await _customer_sends(bridge, CUSTOMER, type="text", text="Are you there?")
        await expect(thread.locator(".bubble.in", has_text="Are you there?")).to_be_visible(timeout=2000)
        assert time.monotonic() - before < 2.5
        await expect(page.locator("#attention")).to_have_text("1")  # setAttentionCount on the host

        # Ticks of a new agent message: sent → delivered → read, never back (watched in the frame).
        frame = page.frame(url=re.compile(r"/widget\?"))
        assert frame is not None
        await frame.evaluate(TICK_WATCHER, "Tracking number 42")
        await page.get_by_label("Reply").fill("Tracking number 42")
        await page.get_by_role("button", name="Send reply").click()
        tracked = thread.locator(".bubble.out", has_text="Tracking number 42")
        await expect(tracked.locator(".tick")).to_have_class(re.compile(r"\bread\b"), timeout=10000)
        ranks = [_tick_rank(c) for c in await frame.evaluate("() => window.tickLog")]
        assert ranks, "the tick never changed"
        assert ranks == sorted(ranks), ranks
        assert ranks[-1] == 3

        # React to a customer message, and reply quoting one: both land on WhatsApp and in the thread.
        asked = thread.locator(".bubble.in", has_text="Are you there?")
        await asked.get_by_role("button", name="React").click()
        await asked.get_by_role("button", name="Reaction ❤️").click()
        await expect(asked.locator(".reaction.agent")).to_have_text("❤️", timeout=5000)
        colour = thread.locator(".bubble.in", has_text="And the colour?")
        await colour.get_by_role("button", name="Reply").click()
        await widget.get_by_role("textbox", name="Message", exact=True).fill("Blue, like the box.")
        await widget.get_by_role("button", name="Send", exact=True).click()
        answer = thread.locator(".bubble.out", has_text="Blue, like the box.")
        await expect(answer.locator(".quote")).to_have_text("And the colour?", timeout=5000)
        sent = await bridge.whatsapp_sent(to=CUSTOMER)
        assert any(m["type"] == "reaction" and m["body"]["reaction"]["emoji"] == "❤️" for m in sent)

        # A quick answer goes into the desktop's composer through proposeInteractionMessage.
        await widget.get_by_label("Message", exact=True).fill("Your parcel left our warehouse.")
        await widget.get_by_role("button", name="Put in the Genesys reply box").click()
        await expect(page.get_by_label("Reply")).to_have_value("Your parcel left our warehouse.")
        actions = await page.evaluate("() => window.sdkMessages.map(m => m.action)")
        assert "bootstrapped" in actions
        assert "proposeInteractionMessage" in actions

        await page.screenshot(path=str(SCREENSHOTS / "widget-desktop.png"))
        await widget.locator("section.customer").scroll_into_view_if_needed()
        await page.locator("#widget-frame").screenshot(path=str(SCREENSHOTS / "widget-conversation.png"))

        # After stop, the widget makes no request at all.
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url) if "/widget" in request.url else None)
        await page.get_by_role("button", name="Close widget").click()
        await page.wait_for_function("() => window.sdkMessages.some(m => m.action === 'stopped')")
        requests.clear()
        await _customer_sends(bridge, CUSTOMER, type="text", text="Hello?")
        await asyncio.sleep(2.5)
        assert requests == []
        assert browser.errors == []
        assert browser.foreign == []


async def _first_wamid(bridge: Bridge) -> str | None:
    sent = await bridge.whatsapp_sent(to=CUSTOMER)
    return str(sent[0]["wamid"]) if sent else None


async def _inbound_rows(bridge: Bridge, count: int) -> bool | None:
    async with bridge.runtime.database.session() as session:
        rows = await session.scalar(select(func.count(Message.id)).where(Message.direction == "inbound"))
    return True if (rows or 0) >= count else None


@pytest.mark.skipif(shutil.which("chromium") is None and not Path(CHROMIUM).exists(), reason="no Chromium")
async def test_widget_failure_reason_window_countdown_and_templates(bridge: Bridge) -> None:
    from playwright.async_api import expect

    await _customer_sends(bridge, CUSTOMER, type="text", text="Hello")
    conversation_id = await _genesys_conversation(bridge, CUSTOMER)
    fault = {"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "code": 131026}
    (await bridge.meta.post("/_sandbox/faults", json=fault)).raise_for_status()
    await bridge.agent_says(CUSTOMER, "Are you still there?")

    async with Browser() as browser:
        page = await _desktop(browser, bridge, conversation_id)
        widget = page.frame_locator("#widget-frame")
        failed = widget.locator(".bubble.out", has_text="Are you still there?")
        await expect(failed.locator(".tick")).to_have_class(re.compile(r"\bfailed\b"), timeout=10000)
        await expect(failed.locator(".failure")).to_contain_text("cannot receive WhatsApp messages")
        await expect(failed.locator(".failure")).to_contain_text("131026")
        # A failure while the widget is open also raises a Genesys toast.
        (await bridge.meta.post("/_sandbox/faults", json=fault)).raise_for_status()
        await bridge.agent_says(CUSTOMER, "Second try")
        await expect(page.locator("#toasts")).to_contain_text("Not delivered", timeout=10000)

        # The injected clock: the customer wrote 23 h 50 min ago.
        await _set_last_customer_message(bridge, CUSTOMER, timedelta(hours=23, minutes=50))
        await expect(widget.locator(".countdown")).to_have_text(re.compile(r"^Window closes in 0 h (9|10) min$"))
        message = widget.get_by_role("textbox", name="Message", exact=True)
        await expect(message).to_be_enabled()

        # Seconds before the end: the countdown closes it live, free text locks, templates are offered.
        await _set_last_customer_message(bridge, CUSTOMER, timedelta(hours=24) - timedelta(seconds=3))
        await expect(widget.get_by_text("The 24-hour window is closed")).to_be_visible(timeout=8000)
        await expect(message).to_be_disabled()
        await expect(widget.get_by_role("button", name="Send", exact=True)).to_be_disabled()
        picker = widget.get_by_label("Template", exact=True)
        await expect(picker).to_be_visible()
        await expect(picker.locator("option")).to_contain_text(["order_update (en_US)"])
        assert "new_feature (en_US)" not in await picker.locator("option").all_inner_texts()  # pending
        assert "winback_offer (en_US)" not in await picker.locator("option").all_inner_texts()  # rejected

        await picker.select_option(label="order_update (en_US)")
        send = widget.get_by_role("button", name="Send template")
        await expect(send).to_be_disabled()
        await widget.get_by_role("textbox", name="Header value 1").fill("A-1001")
        await widget.get_by_role("textbox", name="Body value 1").fill("Sheena")
        await widget.get_by_role("textbox", name="Body value 2").fill("A-1001")
        await expect(send).to_be_disabled()  # not every parameter yet
        await widget.get_by_role("textbox", name="Body value 3").fill("Friday")
        await widget.get_by_role("textbox", name="Button 1 value").fill("A-1001")
        preview = widget.locator("#template-preview")
        await expect(preview).to_contain_text("Order A-1001")
        await expect(preview).to_contain_text("Hello Sheena, your order A-1001 ships on Friday.")
        await expect(send).to_be_enabled()
        await preview.scroll_into_view_if_needed()
        await page.locator("#widget-frame").screenshot(path=str(SCREENSHOTS / "widget-template.png"))
        await send.click()

        template = await eventually(lambda: _template_sent(bridge), within=15)
        assert template["name"] == "order_update"
        assert template["language"] == {"code": "en_US"}
        assert template["components"] == [
            {"type": "header", "parameters": [{"type": "text", "text": "A-1001"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Sheena"}, {"type": "text", "text": "A-1001"},
                                            {"type": "text", "text": "Friday"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-1001"}]},
        ]  # fmt: skip
        transcript = (await bridge.genesys.get(f"/_sandbox/conversations/{conversation_id}/transcript")).json()
        assert any(
            "Hello Sheena, your order A-1001 ships on Friday." in (entry["text"] or "")
            for entry in transcript["messages"]
            if entry["direction"] == "outbound"
        )
        await expect(
            widget.locator(".bubble.out", has_text="Hello Sheena, your order A-1001 ships on Friday.")
        ).to_be_visible()

        # The customer writes again: the window reopens without reload.
        await _customer_sends(bridge, CUSTOMER, type="text", text="Thanks, I'm back")
        await expect(widget.locator(".countdown")).to_have_text(re.compile(r"Window closes in (23 h 59|24 h 0) min"))
        await expect(message).to_be_enabled()
        assert browser.errors == []
        assert browser.foreign == []


async def _template_sent(bridge: Bridge) -> dict[str, Any] | None:
    for sent in reversed(await bridge.whatsapp_sent(to=CUSTOMER)):
        if sent["type"] == "template":
            template: dict[str, Any] = sent["body"]["template"]
            return template
    return None


@pytest.mark.skipif(shutil.which("chromium") is None and not Path(CHROMIUM).exists(), reason="no Chromium")
async def test_widget_other_tenant_spanish_and_supervisor(bridge: Bridge) -> None:
    from playwright.async_api import expect

    other = tenant_spec()
    await bridge.add_tenant(other)
    await _customer_sends(bridge, CUSTOMER, type="text", text="Hola")
    ours = await _genesys_conversation(bridge, CUSTOMER)
    answer = await bridge.meta.post(
        "/_sandbox/customers/447700900123/messages",
        json={"phone_number_id": other["whatsapp"]["phone_number_id"], "name": "Other Customer", "text": "secret"},
    )
    answer.raise_for_status()
    theirs = await _genesys_conversation(bridge, "447700900123")

    async with Browser() as browser:
        page = await _desktop(browser, bridge, ours, lang="es")
        await page.emulate_media(color_scheme="dark")
        widget = page.frame_locator("#widget-frame")
        await expect(widget.locator(".countdown")).to_contain_text("La ventana se cierra en")
        await expect(widget.get_by_role("button", name="Enviar", exact=True)).to_be_visible()
        await expect(widget.get_by_role("button", name="Adjuntar", exact=True)).to_be_visible()
        await page.locator("#widget-frame").screenshot(path=str(SCREENSHOTS / "widget-spanish-dark.png"))

        # The same agent, framed on another tenant's conversation id: nothing of it is shown.
        await page.evaluate(
            "([ours, theirs]) => { const f = document.getElementById('widget-frame');"
            " f.src = f.src.replace(ours, theirs).replace('langTag=es', 'langTag=en-us'); }",
            [ours, theirs],
        )
        await expect(widget.get_by_role("heading", name="Conversation not found")).to_be_visible()
        await expect(widget.get_by_text("secret")).to_have_count(0)

        supervisor = await _desktop(browser, bridge, ours, who="Sam Supervisor")
        watched = supervisor.frame_locator("#widget-frame")
        await expect(watched.locator(".bubble.in", has_text="Hola")).to_be_visible()
        await expect(watched.get_by_text("Supervisors see this conversation read-only.")).to_be_visible()
        await expect(watched.get_by_role("button", name="Send", exact=True)).to_have_count(0)
        await expect(watched.get_by_role("button", name="React")).to_have_count(0)
        # Not signed in to Genesys in this browser: the silent sign-in cannot succeed, the widget asks, and a
        # popup signs the agent in.
        stranger = await browser.page(another_person=True)
        await stranger.goto(
            f"{bridge.url}/widget?gcConversationId={ours}&gcHostOrigin={bridge.url}&gcTargetEnv=prod-usw2&langTag=en-us"
        )
        ask = stranger.get_by_role("button", name="Sign in with Genesys Cloud")
        await expect(ask).to_be_visible(timeout=10000)
        async with stranger.expect_popup() as opened:
            await ask.click()
        popup = await opened.value
        await popup.get_by_role("button", name=re.compile("Alex Agent")).click()
        await expect(stranger.locator(".customer-name")).to_have_text("Sheena Nelson")

        # The only refusal is the other tenant's conversation (the browser logs that 404 as a console error).
        assert [status for status, url in browser.refused if f"/widget/api/conversations/{theirs}" in url] == [404]
        assert [url for _status, url in browser.refused if theirs not in url] == []
        assert browser.errors == ["Failed to load resource: the server responded with a status of 404 (Not Found)"]
        assert browser.foreign == []
