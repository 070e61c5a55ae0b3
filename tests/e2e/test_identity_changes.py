"""A customer's WhatsApp identity changes (new number, new BSUID), also in notices without `from`:
the notice reaches the agent in the customer's conversation, and the conversation follows the customer."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.config import Settings
from xypr.state.models import Conversation
from xypr.topology import INBOUND_WHATSAPP

PHONE = "16505551234"
NEW_PHONE = "12195555358"
BSUID = "US.13491208655302741918"
NEW_BSUID = "US.99912208655302741000"


async def _webhook(bridge: Bridge, message: dict[str, Any], contact: dict[str, Any] | None = None) -> None:
    """Post one `messages[]` item as Meta would (signed by the emulator), with or without a contacts block."""
    wa = bridge.demo["whatsapp"]
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": wa["phone_number_id"]},
        "messages": [{"timestamp": str(int(time.time())), **message}],
    }
    if contact is not None:
        value["contacts"] = [contact]
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": wa["waba_id"], "changes": [{"field": "messages", "value": value}]}]}  # fmt: skip
    answer = await bridge.meta.post(
        "/_sandbox/webhooks/raw", json={"phone_number_id": wa["phone_number_id"], "body": body}
    )
    assert answer.json()["webhook_status"] == 200


async def _delivered(bridge: Bridge, wamid: str) -> dict[str, Any] | None:
    for item in await bridge.genesys_received():
        if item["body"]["channel"].get("messageId") == wamid:
            found: dict[str, Any] = item
            return found
    return None


async def _conversations(bridge: Bridge) -> list[Conversation]:
    async with bridge.runtime.database.session() as session:
        return list((await session.scalars(select(Conversation))).all())


def _text(wamid: str, body: str, **sender: str) -> dict[str, Any]:
    return {"id": wamid, "type": "text", "text": {"body": body}, **sender}


async def test_a_bsuid_change_without_from_reaches_the_agent_and_the_new_bsuid_continues_the_conversation(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        # A customer known by username only: no phone number, the BSUID is their key.
        await _webhook(
            bridge, _text("wamid.u1", "hi, no number here", from_user_id=BSUID),
            contact={"user_id": BSUID, "profile": {"name": "Ann Lee", "username": "@ann"}},
        )  # fmt: skip
        first = await eventually(lambda: _delivered(bridge, "wamid.u1"))
        assert first["body"]["channel"]["from"]["id"] == BSUID

        # The notice names the customer only inside `system`.
        await _webhook(bridge, {"id": "wamid.sys-u", "type": "system", "system": {
            "type": "user_changed_user_id", "body": "User changed their user id",
            "previous_user_id": BSUID, "user_id": NEW_BSUID}})  # fmt: skip
        notice = await eventually(lambda: _delivered(bridge, "wamid.sys-u"))
        # Under the id the agent knows: Genesys threads it into the customer's conversation.
        assert notice["body"]["channel"]["from"]["id"] == BSUID
        assert notice["conversation_id"] == first["conversation_id"]
        assert notice["body"]["text"] == f"[The customer's WhatsApp user id changed from {BSUID} to {NEW_BSUID}.]"
        assert notice["body"]["channel"]["from"]["nickname"] == "Ann Lee"  # from state: notices have no contacts

        (moved,) = await _conversations(bridge)
        assert (moved.wa_id, moved.bsuid) == (NEW_BSUID, NEW_BSUID)

        await _webhook(bridge, _text("wamid.u2", "still me", from_user_id=NEW_BSUID))
        await eventually(lambda: _delivered(bridge, "wamid.u2"))
        (same,) = await _conversations(bridge)
        assert same.id == moved.id
        assert await bridge.runtime.broker.dead_letters() == []


async def test_a_number_change_without_from_is_found_by_the_previous_bsuid_and_the_new_number_continues(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await _webhook(
            bridge, _text("wamid.p1", "hello", **{"from": PHONE, "from_user_id": BSUID}),
            contact={"wa_id": PHONE, "user_id": BSUID, "profile": {"name": "Sheena Nelson"}},
        )  # fmt: skip
        first = await eventually(lambda: _delivered(bridge, "wamid.p1"))

        await _webhook(bridge, {"id": "wamid.sys-n", "type": "system", "system": {
            "type": "user_changed_number", "body": f"User Sheena Nelson changed from {PHONE} to {NEW_PHONE}",
            "wa_id": NEW_PHONE, "user_id": NEW_BSUID, "previous_user_id": BSUID}})  # fmt: skip
        notice = await eventually(lambda: _delivered(bridge, "wamid.sys-n"))
        assert notice["body"]["channel"]["from"] == {
            "id": PHONE, "idType": "Phone", "nickname": "Sheena Nelson", "firstName": "Sheena", "lastName": "Nelson",
        }  # fmt: skip
        assert notice["conversation_id"] == first["conversation_id"]
        assert notice["body"]["text"] == (
            f"[The customer changed their WhatsApp number from {PHONE} to {NEW_PHONE}. "
            f"Their new messages come from {NEW_PHONE}.]"
        )
        (moved,) = await _conversations(bridge)
        assert (moved.wa_id, moved.bsuid) == (NEW_PHONE, NEW_BSUID)

        # The new number writes, then (username adopted) the new BSUID alone: one conversation throughout.
        await _webhook(bridge, _text("wamid.p2", "new phone", **{"from": NEW_PHONE, "from_user_id": NEW_BSUID}))
        await _webhook(bridge, _text("wamid.p3", "number hidden now", from_user_id=NEW_BSUID))
        await eventually(lambda: _delivered(bridge, "wamid.p3"))
        hidden = await _delivered(bridge, "wamid.p3")
        assert hidden is not None
        assert hidden["body"]["channel"]["from"]["id"] == NEW_PHONE  # the id the agent knows, not a stranger
        (same,) = await _conversations(bridge)
        assert same.id == moved.id


async def test_an_identity_notice_naming_no_customer_is_dead_lettered_with_its_reason(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await _webhook(bridge, {"id": "wamid.sys-x", "type": "system",
                                "system": {"type": "user_changed_user_id", "body": "?"}})  # fmt: skip

        async def letters() -> list[Any]:
            return await bridge.runtime.broker.dead_letters()

        (letter,) = await eventually(letters)
        assert letter.queue == INBOUND_WHATSAPP
        assert "names no customer" in letter.error
        assert await _conversations(bridge) == []
