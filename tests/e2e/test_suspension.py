"""A suspended tenant: its webhooks are acknowledged and parked, nothing is processed, and everything resumes
in order on reactivation; on the embedded backends and on the real local services."""

from __future__ import annotations

import asyncio

from tests.support.auth import login_as
from tests.support.bridge import eventually, running_bridge
from xypr.auth.principal import Role
from xypr.config import Settings

CUSTOMER = "16505551234"


async def test_a_suspended_tenants_webhooks_are_parked_and_replayed_in_order_on_reactivation(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        admin = await login_as(bridge, Role.XYPR_ADMIN)
        tenant = await bridge.runtime.tenants.by_phone_number_id(bridge.demo["whatsapp"]["phone_number_id"])
        assert tenant is not None
        # The customer opens the conversation (and the 24-hour window) while the tenant is active.
        await bridge.customer_says(CUSTOMER, "first")
        await eventually(bridge.genesys_received)

        suspended = await bridge.client.post(f"/tenants/{tenant.id}/suspend", headers=admin)
        assert suspended.json()["status"] == "suspended"
        webhooks = [
            await bridge.customer_says(CUSTOMER, "second"),
            await bridge.agent_says(CUSTOMER, "reply one"),
            await bridge.customer_says(CUSTOMER, "third"),
            await bridge.agent_says(CUSTOMER, "reply two"),
        ]

        assert [webhook["webhook_status"] for webhook in webhooks] == [200, 200, 200, 200]
        view = (await bridge.client.get(f"/tenants/{tenant.id}", headers=admin)).json()
        assert view["parkedEvents"] == 4
        await asyncio.sleep(0.5)  # time enough for the workers to have acted, were anything published
        assert [item["body"]["text"] for item in await bridge.genesys_received()] == ["first"]
        assert await bridge.whatsapp_sent(to=CUSTOMER) == []

        reactivated = await bridge.client.post(f"/tenants/{tenant.id}/reactivate", headers=admin)

        assert reactivated.status_code == 200, reactivated.text
        assert reactivated.json()["resumedEvents"] == 4
        assert reactivated.json()["tenant"]["status"] == "active"
        assert reactivated.json()["tenant"]["parkedEvents"] == 0

        async def texts_at_genesys() -> list[str] | None:
            texts = [item["body"]["text"] for item in await bridge.genesys_received()]
            return texts if len(texts) >= 3 else None

        async def texts_at_whatsapp() -> list[str] | None:
            texts = [item["body"]["text"]["body"] for item in await bridge.whatsapp_sent(to=CUSTOMER)]
            return texts if len(texts) >= 2 else None

        assert await eventually(texts_at_genesys) == ["first", "second", "third"]
        assert await eventually(texts_at_whatsapp) == ["reply one", "reply two"]

        # Active again: the next message goes straight through.
        await bridge.customer_says(CUSTOMER, "fourth")

        async def fourth_text_at_genesys() -> str | None:
            received = await bridge.genesys_received()
            return str(received[3]["body"]["text"]) if len(received) > 3 else None

        assert await eventually(fourth_text_at_genesys) == "fourth"
