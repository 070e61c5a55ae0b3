"""The admin dashboard in headless Chromium, on the sandbox: each page walked as the role that uses it.

Every test fails on a console error or on a request to any host but 127.0.0.1 / localhost. Set
`XYPR_SCREENSHOT_DIR` to keep a screenshot of each page (docs/screenshots/admin-*.png are made so).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from pydantic import SecretStr

from tests.conftest import embedded_settings
from tests.support.auth import admin_credentials, tenant_org_id
from tests.support.bridge import Bridge, eventually, running_bridge, tenant_spec
from tests.support.moto import free_port
from xypr.backends.storage import create_object_store
from xypr.sandbox.demo import register_with_emulators

pytestmark = [
    pytest.mark.browser,
    # One served sandbox for the module: its start-up (migrations, workers, emulators) is paid once.
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()), reason="no Chromium"),
]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
CUSTOMER = "16505551234"
SHOTS = os.environ.get("XYPR_SCREENSHOT_DIR")


@dataclass
class Watch:
    """What the pages did wrong: console errors (with the page they happened on) and requests to other hosts."""

    console: list[tuple[str, str]] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def errors_except(self, *allowed: tuple[str, str]) -> list[tuple[str, str]]:
        """Console errors other than the `(path, text pattern)` ones a test expects."""
        return [
            (url, text)
            for url, text in self.console
            if not any(urlsplit(url).path == path and re.search(pattern, text) for path, pattern in allowed)
        ]


@asynccontextmanager
async def chromium() -> AsyncIterator[tuple[Any, Watch]]:
    """A fresh page in headless Chromium, and what to watch on it."""
    from playwright.async_api import async_playwright

    watch = Watch()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            page.on("console", lambda m: watch.console.append((page.url, m.text)) if m.type == "error" else None)
            page.on("pageerror", lambda e: watch.console.append((page.url, str(e))))

            async def only_local(route: Any) -> None:
                host = urlsplit(route.request.url).hostname
                if host in ("127.0.0.1", "localhost"):
                    await route.continue_()
                else:
                    watch.outside.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_local)
            page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm's questions: yes
            yield page, watch
        finally:
            await browser.close()


async def shot(page: Any, name: str) -> None:
    """Keep a screenshot of the page when asked to (for the docs)."""
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        await page.screenshot(path=os.path.join(SHOTS, f"admin-{name}.png"), full_page=True)


async def sign_in(page: Any, bridge: Bridge, email: str, password: str) -> None:
    from playwright.async_api import expect

    await page.goto(f"{bridge.url}/admin")
    await expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bridge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bridge]:
    """One sandbox bridge for every test here; each test makes its own tenants and counts relative to its start."""
    async with running_bridge(embedded_settings(tmp_path_factory.mktemp("admin"), max_attempts=2)) as running:
        yield running


async def test_an_administrator_watches_the_bridge_onboards_a_tenant_and_acts_on_tenants(bridge: Bridge) -> None:
    from playwright.async_api import expect

    email, password = await admin_credentials(bridge)
    await bridge.meta.post("/_sandbox/statuses/sequence", json={"sequence": ["sent", "delivered"]})
    other = tenant_spec()
    other_id = await bridge.add_tenant(other)
    async with chromium() as (page, watch):
        # Sign in: a wrong password stays on the page with the error; the right one opens the overview.
        await sign_in(page, bridge, email, "not the password")
        await expect(page.get_by_role("alert")).to_contain_text("Wrong email or password")
        await shot(page, "sign-in")
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
        for name in ("database", "broker", "cache", "storage"):
            await expect(page.locator(f'[data-tile="{name}"]')).to_have_attribute("data-state", "green")

        # A stopped dependency turns its tile red, live.
        closed = bridge.runtime.settings.model_copy(
            update={"s3_endpoint": f"http://127.0.0.1:{free_port()}", "s3_bucket": "gone",
                    "s3_access_key": SecretStr("x"), "s3_secret_key": SecretStr("x")}
        )  # fmt: skip
        down = create_object_store(closed)
        assert await down.ping() is False
        working, bridge.runtime.store = bridge.runtime.store, down
        try:
            await expect(page.locator('[data-tile="storage"]')).to_have_attribute("data-state", "red")
            await expect(page.locator('[data-tile="database"]')).to_have_attribute("data-state", "green")
        finally:
            bridge.runtime.store = working
            await down.close()
        await expect(page.locator('[data-tile="storage"]')).to_have_attribute("data-state", "green")

        # Five customer messages raise the inbound count by five.
        inbound = page.locator('[data-count="inbound"]')
        before = int(await inbound.inner_text())
        for number in range(5):
            await bridge.customer_says(CUSTOMER, f"message {number}")
        await expect(inbound).to_have_text(str(before + 5))
        await expect(page.locator("#throughput-chart canvas")).to_have_count(1)
        await shot(page, "overview")

        # Search a tenant by its phone_number_id.
        await page.get_by_role("link", name="Tenants").click()
        await page.get_by_label("Search").fill(other["whatsapp"]["phone_number_id"])
        await page.get_by_role("button", name="Search").click()
        results = page.locator("#tenant-results")
        await expect(results.get_by_role("heading", level=2)).to_contain_text("1 tenant")
        await expect(results.get_by_role("link", name=other["name"])).to_be_visible()
        await shot(page, "tenants")

        # Onboard a tenant through the wizard; its live check fails on the access token first.
        spec = tenant_spec("wizard")
        await register_with_emulators(bridge.meta, bridge.genesys, spec, public_url=bridge.url)
        wa, gc = spec["whatsapp"], spec["genesys"]
        await page.goto(f"{bridge.url}/admin/tenants")
        await page.get_by_role("link", name="New tenant").click()
        await page.get_by_label("Organisation name").fill(spec["name"])
        await page.get_by_role("button", name="Continue").click()
        # Each field is checked as it changes, before Continue: its format, and whether another tenant has it.
        # (Once the page is loaded: htmx binds the checks when the document is ready.)
        await expect(page).to_have_url(re.compile(r"/whatsapp$"))
        await page.wait_for_load_state("load")
        await page.get_by_label("WhatsApp Business Account ID").fill("12ab")
        await page.get_by_label("WhatsApp Business Account ID").press("Tab")
        waba_group = page.locator(".form-group", has=page.get_by_label("WhatsApp Business Account ID"))
        await expect(waba_group).to_have_class(re.compile("has-error"))
        await expect(waba_group.locator(".field-error")).to_contain_text("Use digits only")
        await page.get_by_label("Phone number ID").fill(bridge.demo["whatsapp"]["phone_number_id"])
        await page.get_by_label("Phone number ID").press("Tab")
        phone_group = page.locator(".form-group", has=page.get_by_label("Phone number ID"))
        await expect(phone_group.locator(".field-error")).to_contain_text(
            "Another tenant already has this phone number ID"
        )
        await expect(page.locator(".error-summary")).to_have_count(0)  # nothing was submitted
        await shot(page, "wizard-live-check")
        await page.get_by_label("WhatsApp Business Account ID").fill(wa["waba_id"])
        await page.get_by_label("WhatsApp Business Account ID").press("Tab")
        await expect(waba_group.locator(".field-error")).to_have_count(0)
        await page.get_by_label("Phone number ID").fill(wa["phone_number_id"])
        await page.get_by_label("Phone number ID").press("Tab")
        await expect(phone_group.locator(".field-error")).to_have_count(0)
        await page.get_by_label("Display phone number").fill(wa["display_phone_number"])
        await page.get_by_label("Access token").fill("EAAG-not-this-one")
        await page.get_by_label("App secret").fill(wa["app_secret"])
        await page.get_by_label("Verify token").fill(wa["verify_token"])
        await page.get_by_role("button", name="Continue").click()
        summary = page.locator(".error-summary")
        await expect(summary).to_contain_text("access token is invalid or expired")
        field_error = page.locator(".form-group.has-error")
        await expect(field_error.get_by_label("Access token")).to_be_visible()
        await expect(field_error).to_contain_text("invalid or expired")
        assert "EAAG-not-this-one" not in await page.content()
        assert wa["app_secret"] not in await page.content()
        await shot(page, "wizard-error")
        # The wizard is resumable: left here, it is listed on Tenants and goes back to the failing step, which
        # kept every answer (the secrets too, without showing them).
        await page.goto(f"{bridge.url}/admin/tenants")
        await page.get_by_role("link", name=f"Continue onboarding {spec['name']}").click()
        await expect(page.get_by_role("heading", level=1, name="Its WhatsApp number")).to_be_visible()
        await page.wait_for_load_state("domcontentloaded")
        await expect(page.get_by_label("Phone number ID")).to_have_value(wa["phone_number_id"])
        await expect(page.locator("#saved-app_secret")).to_contain_text("Saved")
        assert wa["app_secret"] not in await page.content()
        await page.get_by_label("Access token").fill(wa["access_token"])
        await page.get_by_role("button", name="Continue").click()
        await page.get_by_label("Region").select_option(gc["region"])
        await page.get_by_label("Client ID").fill(gc["client_id"])
        await page.get_by_label("Client secret").fill(gc["client_secret"])
        await page.get_by_role("button", name="Continue").click()
        await expect(page.get_by_role("heading", level=1, name="Check your answers")).to_be_visible()
        await shot(page, "wizard-check")
        await page.get_by_role("button", name="Create tenant").click()
        await expect(page.get_by_role("heading", level=1, name=f"Webhooks of {spec['name']}")).to_be_visible()
        await page.get_by_role("button", name="Test verification").click()
        await expect(page.locator("#verification")).to_contain_text("Verification passed")
        source = await page.content()
        for secret in (wa["access_token"], wa["app_secret"], wa["verify_token"], gc["client_secret"]):
            assert secret not in source
        await shot(page, "webhooks")

        # A wamid's timeline ends in Delivered.
        await bridge.customer_says(CUSTOMER, "is anyone there?")
        await eventually(lambda: bridge.genesys_received())
        await bridge.agent_says(CUSTOMER, "yes, how can I help?")
        [sent] = await eventually(lambda: bridge.whatsapp_sent(to=CUSTOMER))

        async def delivered() -> bool:
            await page.goto(f"{bridge.url}/admin/messages?q={sent['wamid']}")
            last = page.locator("ol.timeline li").last
            return await last.count() == 1 and await last.get_attribute("data-step") == "delivered"

        await eventually(delivered, every=0.5)
        await expect(page.locator("ol.timeline li").last).to_contain_text("Delivered")
        await shot(page, "messages")

        # "Refresh token" changes the Genesys token's expiry: each refresh shows the lifetime Genesys gave it.
        demo_id = await _tenant_id(bridge, bridge.demo["whatsapp"]["phone_number_id"])
        await page.goto(f"{bridge.url}/admin/tenants/{demo_id}")
        expiry, refreshed = page.locator("#token-expiry"), page.locator("#token-refreshed")
        for seconds in (3600, 7200):
            await bridge.genesys.post("/_sandbox/tokens/ttl", json={"seconds": seconds})
            async with page.expect_response(re.compile(r"/genesys-token/refresh$")) as answer:
                await page.get_by_role("button", name="Refresh token").click()
            assert (await answer.value).ok
            await expect(expiry).not_to_have_text("—")
            lifetime = _when(await expiry.inner_text()) - _when(await refreshed.inner_text())
            assert abs(lifetime - seconds) <= 1, (seconds, lifetime)
        await shot(page, "tenant")

        # Suspend shows the parked webhooks; reactivate replays them and clears the count.
        await page.goto(f"{bridge.url}/admin/tenants/{other_id}")
        await page.get_by_role("button", name="Suspend").click()
        await expect(page.locator("#tenant-status")).to_have_text("suspended")
        for text in ("parked one", "parked two"):
            await bridge.customer_says(CUSTOMER, text, phone_number_id=other["whatsapp"]["phone_number_id"])
        await page.reload()
        await expect(page.locator("#parked-count")).to_have_text("2")
        await shot(page, "tenant-suspended")
        await page.get_by_role("button", name="Reactivate").click()
        await expect(page.locator("#tenant-status")).to_have_text("active")
        await expect(page.locator("#parked-count")).to_have_count(0)

        # Suspended tenants are a status filter away; deleting one asks for its name first.
        await page.get_by_role("button", name="Suspend").click()
        await expect(page.locator("#tenant-status")).to_have_text("suspended")
        await page.goto(f"{bridge.url}/admin/tenants")
        await page.get_by_label("Status").select_option("suspended")
        await expect(results.get_by_role("heading", level=2)).to_have_text("1 tenant")
        await results.get_by_role("link", name=other["name"]).click()
        await page.get_by_role("link", name="Delete").click()
        await expect(page.get_by_role("heading", level=1, name=f"Delete {other['name']}?")).to_be_visible()
        await page.wait_for_load_state("domcontentloaded")  # htmx (deferred) drives the form from then on
        await page.get_by_label("Type the tenant's name to confirm").fill("not its name")
        await page.get_by_role("button", name="Delete tenant").click()
        await expect(page.get_by_role("alert")).to_contain_text("Type the tenant's name exactly")
        await shot(page, "tenant-delete")
        await page.get_by_label("Type the tenant's name to confirm").fill(other["name"])
        await page.get_by_role("button", name="Delete tenant").click()
        await expect(page).to_have_url(re.compile(r"/admin/tenants$"))
        await page.get_by_label("Search").fill(other["whatsapp"]["phone_number_id"])
        await page.get_by_role("button", name="Search").click()
        await expect(results.get_by_role("heading", level=2)).to_contain_text("0 tenants")

        assert watch.outside == []
        assert watch.console == []


def _when(shown: str) -> float:
    """A time as the pages show it ("2026-12-02 09:21:37 UTC"), in seconds."""
    return datetime.strptime(shown, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC).timestamp()


async def _tenant_id(bridge: Bridge, phone_number_id: str) -> str:
    from sqlalchemy import select

    from xypr.tenants.models import Tenant

    async with bridge.runtime.database.session() as session:
        return str(await session.scalar(select(Tenant.id).where(Tenant.wa_phone_number_id == phone_number_id)))


async def test_dead_letters_are_inspected_replayed_and_discarded_and_the_audit_log_says_who(bridge: Bridge) -> None:
    from playwright.async_api import expect

    email, password = await admin_credentials(bridge)
    integration = bridge.demo["genesys"]["integration_id"]
    async with chromium() as (page, watch):
        await sign_in(page, bridge, email, password)
        await expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
        # The module's other tests dead-letter nothing: every count below starts from zero.
        await expect(page.locator('[data-count="dead-letters"]')).to_have_text("0")

        # A forced Genesys 400 produces a dead letter, counted on the overview.
        await bridge.genesys.post("/_sandbox/faults", json={"status": 400, "count": 1, "integration_id": integration})
        replayed = await bridge.customer_says(CUSTOMER, "refused by Genesys, then replayed")
        await expect(page.locator('[data-count="dead-letters"]')).to_have_text("1")
        await page.get_by_role("link", name="Dead letters").first.click()
        await expect(page.locator("#dlq-total")).to_have_text("1")
        await shot(page, "dead-letters")
        await page.get_by_role("link", name=re.compile("^Inspect")).click()
        await expect(page.locator("#letter-error")).to_contain_text("400")
        payload = await page.locator("pre.payload").inner_text()
        assert "refused by Genesys, then replayed" in payload
        await shot(page, "dead-letter")

        # Replayed after the fault is gone: the message arrives and the count drops.
        await page.get_by_role("button", name="Replay").click()
        await expect(page.locator("#dlq-total")).to_have_text("0")

        async def arrived() -> bool:
            received = await bridge.genesys_received()
            return any(r["body"].get("text") == "refused by Genesys, then replayed" for r in received)

        await eventually(arrived)

        # Another one is discarded, with a reason (required).
        await bridge.genesys.post("/_sandbox/faults", json={"status": 400, "count": 1, "integration_id": integration})
        discarded = await bridge.customer_says(CUSTOMER, "refused and discarded")

        async def listed() -> bool:
            await page.goto(f"{bridge.url}/admin/dead-letters")
            return await page.locator("#dlq-total").inner_text() == "1"

        await eventually(listed, every=0.5)
        await page.get_by_role("link", name=re.compile("^Inspect")).click()
        await page.get_by_role("button", name="Discard").click()
        await expect(page.locator("#discard-error")).to_contain_text("Say why")
        await page.get_by_label("Reason").fill("duplicate of an order already handled by phone")
        await page.get_by_role("button", name="Discard").click()
        await expect(page.locator("#dlq-total")).to_have_text("0")

        # Each message's timeline keeps what happened to its dead letter, after the letter is gone.
        steps = page.locator("ol.timeline li")
        await page.goto(f"{bridge.url}/admin/messages?q={replayed['wamid']}")
        await expect(steps.filter(has_text="Dead-lettered")).to_contain_text("400")
        await expect(steps.filter(has_text="Retried")).to_contain_text(f"replayed by {email}")
        await shot(page, "message-replayed")
        await page.goto(f"{bridge.url}/admin/messages?q={discarded['wamid']}")
        await expect(steps.last).to_have_attribute("data-step", "discarded")
        await expect(steps.last).to_contain_text("duplicate of an order already handled by phone")
        await page.goto(f"{bridge.url}/admin/messages?q=wamid.nothing-like-this")
        await expect(page.get_by_role("heading", level=2, name="No message")).to_be_visible()

        # The audit log says who did it, and why.
        await page.get_by_role("link", name="Audit log").click()
        rows = page.locator("tbody tr")
        await expect(rows.filter(has_text="dead_letter.discard")).to_contain_text(
            "duplicate of an order already handled by phone"
        )
        await expect(rows.filter(has_text="dead_letter.replay")).to_contain_text(email)
        await shot(page, "audit")

        await page.get_by_role("link", name="Users").click()
        await expect(page.get_by_role("heading", level=2, name="Signed in now")).to_be_visible()
        await expect(page.get_by_role("cell", name=email).first).to_be_visible()
        await shot(page, "users")

        assert watch.outside == []
        assert watch.console == []


async def test_a_tenant_admin_sees_only_their_tenant_and_an_agent_has_no_access(bridge: Bridge) -> None:
    from playwright.async_api import expect

    other_id = await bridge.add_tenant(tenant_spec())
    await tenant_org_id(bridge)
    async with chromium() as (page, watch):
        await page.goto(f"{bridge.url}/admin")
        await page.get_by_role("link", name="Sign in with Genesys Cloud").click()
        await page.get_by_role("button", name=re.compile("^Ada Admin")).click()
        await expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
        await expect(page.get_by_role("link", name="My tenant")).to_be_visible()
        await expect(page.get_by_role("link", name="Tenants", exact=True)).to_have_count(0)
        await page.get_by_role("link", name="My tenant").click()
        await expect(page.get_by_role("heading", level=1, name=bridge.demo["name"])).to_be_visible()
        await expect(page.get_by_role("button", name="Refresh token")).to_be_visible()

        # They map their organisation's Genesys roles; their audit log shows it, and only their tenant's entries.
        await page.get_by_label("Supervisors").fill("Supervisor\nTeam Lead")
        await page.get_by_role("button", name="Save role mapping").click()
        await expect(page.locator("#flash")).to_contain_text("The role mapping is saved")
        await page.get_by_role("link", name="Audit log").click()
        update = page.locator("tbody tr").filter(has_text="tenant.update")
        await expect(update.first).to_contain_text("Team Lead")
        demo_id = await _tenant_id(bridge, bridge.demo["whatsapp"]["phone_number_id"])
        assert set(await page.locator("tbody tr td:nth-child(5)").all_inner_texts()) == {demo_id[:8]}
        await shot(page, "audit-tenant-admin")

        await page.goto(f"{bridge.url}/admin/tenants/{other_id}")
        await expect(page.get_by_role("heading", level=1, name="Not found")).to_be_visible()
        answer = await page.request.get(f"{bridge.url}/tenants/{other_id}/genesys-token")
        assert answer.status == 404

        await page.goto(f"{bridge.url}/admin")
        await page.get_by_role("button", name="Sign out").first.click()
        await expect(page).to_have_url(re.compile(r"/admin/login"))
        # Another person at this browser: Genesys's own login session (as real Genesys keeps one) goes too.
        await page.context.clear_cookies()
        await page.get_by_role("link", name="Sign in with Genesys Cloud").click()
        await page.get_by_role("button", name=re.compile("^Alex Agent")).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("You have no access to the dashboard")
        await shot(page, "no-access")

        # A Xypr administrator sees who of the tenant signed in, and disables the agent.
        email, password = await admin_credentials(bridge)
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(re.compile(r"/admin/login"))
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
        await page.goto(f"{bridge.url}/admin/tenants/{demo_id}")
        people = page.locator("tr[data-person]")
        await expect(people.filter(has_text="tenant admin")).to_have_count(1)
        agent = people.filter(has_text="agent")
        await expect(agent).to_have_count(1)
        await agent.get_by_role("button", name=re.compile("^Disable")).click()
        await expect(agent).to_contain_text("disabled")

        assert watch.outside == []
        # The two refusals are documents answered 404 and 403, which the browser reports as such; nothing else.
        assert watch.errors_except((f"/admin/tenants/{other_id}", "status of 404"), ("/admin", "status of 403")) == []
