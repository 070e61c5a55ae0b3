"""A customer's WhatsApp identity changes (new number, new BSUID), also in notices without `from`:
the notice reaches the agent in the customer's conversation, and the conversation follows the customer.
Genesys threads on `channel.from.id`, so it keeps hearing of the customer under the id it first knew,
while the agent's replies go to the customer's WhatsApp id now."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.auth.principal import Role
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


async def _customer_writes(bridge: Bridge, text: str, *, phone: str | None, bsuid: str) -> dict[str, Any]:
    """The customer writes through the emulated Meta (which opens its 24 h window for their ids); what
    Genesys received of it."""
    answer = await bridge.meta.post(
        f"/_sandbox/customers/{phone or bsuid}/messages",
        json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "text": text, "name": "Sheena Nelson",
              "user_id": bsuid, "hide_phone": phone is None},
    )  # fmt: skip
    answer.raise_for_status()
    wamid = answer.json()["wamid"]
    return await eventually(lambda: _delivered(bridge, wamid))


async def _agent_reply_reaches(bridge: Bridge, known_as: str, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The agent answers the customer Genesys knows as `known_as`: (the Graph send, the Genesys receipt)."""
    reply = await bridge.agent_says(known_as, text)

    async def sent() -> dict[str, Any] | None:
        bodies = [each["body"] for each in await bridge.whatsapp_sent()]
        return next((body for body in bodies if body.get("text", {}).get("body") == text), None)

    async def receipt() -> dict[str, Any] | None:
        receipts = [each["body"] for each in await bridge.genesys_received("receipt")]
        return next((body for body in receipts if body["id"] == reply["id"]), None)

    return await eventually(sent), await eventually(receipt)


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

        later = await _customer_writes(bridge, "still me", phone=None, bsuid=NEW_BSUID)
        # Genesys hears of the customer under the BSUID it knows: the same conversation, no stranger.
        assert later["body"]["channel"]["from"]["id"] == BSUID
        assert later["body"]["channel"]["from"]["idType"] == "Opaque"
        assert later["conversation_id"] == first["conversation_id"]
        (same,) = await _conversations(bridge)
        assert (same.id, same.wa_id, same.genesys_customer_id) == (moved.id, NEW_BSUID, BSUID)

        # The agent answers the customer Genesys knows; WhatsApp delivers it to the new BSUID.
        send, receipt = await _agent_reply_reaches(bridge, BSUID, "glad you are back")
        assert send["recipient"] == NEW_BSUID
        assert "to" not in send
        assert receipt["status"] == "Delivered"
        assert receipt["channel"]["to"] == {"id": BSUID, "idType": "Opaque"}
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

        # The new number writes, then (username adopted) the new BSUID alone: one conversation throughout,
        # told to Genesys under the number it knows (it threads on `from.id`), not as a stranger.
        new_phone = await _customer_writes(bridge, "new phone", phone=NEW_PHONE, bsuid=NEW_BSUID)
        hidden = await _customer_writes(bridge, "number hidden now", phone=None, bsuid=NEW_BSUID)
        for later in (new_phone, hidden):
            assert later["body"]["channel"]["from"]["id"] == PHONE
            assert later["body"]["channel"]["from"]["idType"] == "Phone"
            assert later["conversation_id"] == first["conversation_id"]
        (same,) = await _conversations(bridge)
        assert (same.id, same.wa_id, same.genesys_customer_id) == (moved.id, NEW_PHONE, PHONE)

        # The agent answers the customer Genesys knows; WhatsApp delivers it to the new number.
        send, receipt = await _agent_reply_reaches(bridge, PHONE, "thanks for the new number")
        assert send["to"] == NEW_PHONE
        assert receipt["status"] == "Delivered"
        assert receipt["channel"]["to"] == {"id": PHONE, "idType": "Phone"}
        assert await bridge.runtime.broker.dead_letters() == []


async def test_after_a_number_change_the_agents_sends_stay_in_the_genesys_conversation_and_reach_the_new_number(
    tmp_path: Path,
) -> None:
    async with running_bridge(embedded_settings(tmp_path)) as bridge:
        await bridge.customer_says(PHONE, "hello")

        async def known() -> str | None:
            async with bridge.runtime.database.session() as session:
                return await session.scalar(select(Conversation.genesys_conversation_id))

        genesys_conversation = await eventually(known)
        await _webhook(bridge, {"id": "wamid.sys-w", "type": "system", "system": {
            "type": "user_changed_number", "body": f"User changed from {PHONE} to {NEW_PHONE}",
            "wa_id": NEW_PHONE}, "from": PHONE})  # fmt: skip
        await eventually(lambda: _delivered(bridge, "wamid.sys-w"))
        written = await bridge.customer_says(NEW_PHONE, "it is me, new number")
        later = await eventually(lambda: _delivered(bridge, written["wamid"]))
        assert (later["conversation_id"], later["body"]["channel"]["from"]["id"]) == (genesys_conversation, PHONE)
        assert await known() == genesys_conversation

        # From the widget: text and a template travel through Genesys, into the customer's conversation there.
        agent = await login_as(bridge, Role.AGENT)
        widget = f"/widget/api/conversations/{genesys_conversation}"
        sent = await bridge.client.post(widget + "/messages", json={"text": "Of course."}, headers=agent)
        assert sent.status_code == 202, sent.text
        values = {"body.1": "Ana", "body.2": "A-7", "body.3": "lunes"}
        template = {"template": "order_update|es", "values": values}
        assert (await bridge.client.post(widget + "/templates", json=template, headers=agent)).status_code == 202
        # The template API addresses the conversation too.
        api = {"conversationId": genesys_conversation, "templateName": "order_update", "language": "en_US",
               "parameters": ["Ana", "A-8", "Monday"]}  # fmt: skip
        answer = await bridge.client.post("/transform/outbound/send/template", json=api, headers=agent)
        assert answer.status_code == 202, answer.text

        async def all_sent() -> list[dict[str, Any]] | None:
            bodies = [each["body"] for each in await bridge.whatsapp_sent()]
            return bodies if len(bodies) >= 3 else None

        bodies = await eventually(all_sent)
        assert [(body["type"], body["to"]) for body in bodies] == [
            ("text", NEW_PHONE), ("template", NEW_PHONE), ("template", NEW_PHONE)
        ]  # fmt: skip
        transcript = (await bridge.genesys.get(f"/_sandbox/conversations/{genesys_conversation}/transcript")).json()
        assert "Of course." in [m["text"] for m in transcript["messages"] if m["direction"] == "outbound"]
        assert await bridge.runtime.broker.dead_letters() == []


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
