"""The conversation context follows the pipeline: who wrote, when, and which Genesys conversation; both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.config import Settings
from xypr.state.context import get_context, put_context
from xypr.state.models import Conversation

CUSTOMER = "16505551234"


async def _conversation(bridge: Bridge) -> Conversation:
    async with bridge.runtime.database.session() as session:
        conversation = await session.scalar(select(Conversation).where(Conversation.wa_id == CUSTOMER))
    assert conversation is not None
    return conversation


async def _genesys_conversation_of_last_message(bridge: Bridge) -> str:
    *_, last = await bridge.genesys_received()
    conversation_id: str = last["conversationId"]
    return conversation_id


async def test_context_carries_the_customer_and_the_genesys_conversation_and_follows_a_new_one(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "first", name="Sheena Nelson")
        await eventually(bridge.genesys_received)
        conversation = await _conversation(bridge)
        tenant_id = conversation.tenant_id

        async def context_with(genesys_id: str) -> dict[str, Any] | None:
            found = await get_context(bridge.runtime, tenant_id=tenant_id, conversation_id=conversation.id)
            return found if found and found.get("genesys_conversation_id") == genesys_id else None

        first_genesys = await _genesys_conversation_of_last_message(bridge)
        context = await eventually(lambda: context_with(first_genesys))
        assert context["customer_id"] == CUSTOMER
        assert context["customer_name"] == "Sheena Nelson"
        assert context["last_customer_message_at"].endswith("Z")
        await put_context(
            bridge.runtime, tenant_id=tenant_id, conversation_id=conversation.id, context={"language": "en-GB"}
        )

        # The agent side closes the conversation; the customer's next message opens a new Genesys one.
        ended = await bridge.genesys.post(
            "/_sandbox/conversations/disconnect",
            json={"integration_id": bridge.demo["genesys"]["integration_id"], "customer_id": CUSTOMER},
        )
        assert ended.json()["ended_conversation_id"] == first_genesys
        await bridge.customer_says(CUSTOMER, "second", name="Sheena N.")
        await eventually(lambda: _received(bridge, 2))
        second_genesys = await _genesys_conversation_of_last_message(bridge)
        assert second_genesys != first_genesys

        context = await eventually(lambda: context_with(second_genesys))
        assert context["customer_name"] == "Sheena N."
        assert context["language"] == "en-GB"  # what a tool wrote stays
        by_genesys = await get_context(bridge.runtime, tenant_id=tenant_id, conversation_id=second_genesys)
        assert by_genesys == context


async def _received(bridge: Bridge, count: int) -> bool:
    return len(await bridge.genesys_received()) >= count
