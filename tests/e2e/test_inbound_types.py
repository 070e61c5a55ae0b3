"""Customer media, replies, locations and button answers through every service, on both backends."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from tests.conftest import embedded_settings
from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.config import Settings
from xypr.state.details import MessageDetails, OfferedChoice
from xypr.state.messages import merge_details
from xypr.state.models import Conversation, Media, Message

CUSTOMER = "16505551234"


async def _customer_sends(bridge: Bridge, message_type: str, **fields: Any) -> dict[str, Any]:
    answer = await bridge.meta.post(
        f"/_sandbox/customers/{CUSTOMER}/messages",
        json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "type": message_type,
              "name": "Sheena Nelson", **fields},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    assert result["webhook_status"] == 200
    return result


async def _received_for(bridge: Bridge, wamid: str, kind: str = "message") -> dict[str, Any] | None:
    for item in await bridge.genesys_received(kind):
        if item["body"]["channel"].get("messageId") == wamid:
            found: dict[str, Any] = item
            return found
    return None


def _image_webhook(bridge: Bridge, *, wamid: str, media_id: str, caption: str) -> dict[str, Any]:
    wa = bridge.demo["whatsapp"]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": wa["waba_id"], "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100", "phone_number_id": wa["phone_number_id"]},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}],
            "messages": [{"from": CUSTOMER, "id": wamid, "timestamp": "1749416383", "type": "image",
                          "image": {"caption": caption, "mime_type": "image/jpeg", "id": media_id,
                                    "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI="}}],
        }}]}],
    }  # fmt: skip


async def test_a_customer_image_reaches_genesys_as_an_attachment_whose_url_returns_the_bytes(
    backend_settings: Settings,
) -> None:
    content = b"\xff\xd8\xff\xe0" + os.urandom(40_000)
    async with running_bridge(backend_settings) as bridge:
        created = await bridge.meta.post(
            "/_sandbox/media",
            json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"],
                  "data_base64": base64.b64encode(content).decode(), "mime_type": "image/jpeg"},
        )  # fmt: skip
        media_id = created.json()["id"]

        sent = await _customer_sends(bridge, "image", media_id=media_id, caption="Taj Mahal")

        received = await eventually(lambda: _received_for(bridge, sent["wamid"]))
        body = received["body"]
        assert body["text"] == "Taj Mahal"
        (item,) = body["content"]
        attachment = item["attachment"]
        assert (item["contentType"], attachment["mediaType"], attachment["mime"], attachment["text"]) == (
            "Attachment",
            "Image",
            "image/jpeg",
            "Taj Mahal",
        )
        assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
        if backend_settings.s3_endpoint:
            assert attachment["url"].startswith(f"{backend_settings.s3_endpoint}/{backend_settings.s3_bucket}/tenant/")
        else:
            assert attachment["url"].startswith(f"{bridge.url}/media/tenant/")
        async with httpx.AsyncClient(timeout=10) as plain:  # Genesys fetches with no credentials of ours
            fetched = await plain.get(attachment["url"])
        assert (fetched.status_code, fetched.content) == (200, content)
        async with bridge.runtime.database.session() as session:
            (media,) = (await session.scalars(select(Media))).all()
        assert (media.wamid, media.media_id, media.size) == (sent["wamid"], media_id, len(content))
        assert media.object_key.startswith(f"tenant/{media.tenant_id}/media/")


async def test_media_whatsapp_cannot_give_still_delivers_the_caption_with_a_note(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQkFEMEIyMEVGRkVDVDAwMUE="
        body = _image_webhook(bridge, wamid=wamid, media_id="9999999999999999", caption="my broken blender")

        answer = await bridge.meta.post(
            "/_sandbox/webhooks/raw", json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "body": body}
        )
        assert answer.json()["webhook_status"] == 200

        received = await eventually(lambda: _received_for(bridge, wamid))
        assert received["body"]["text"] == (
            "[The customer sent an image that could not be retrieved from WhatsApp.]\nmy broken blender"
        )
        assert "content" not in received["body"]


async def test_a_reply_to_the_agents_message_quotes_it_and_a_location_comes_with_a_maps_link(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "Does it come in another color?")
        await eventually(bridge.genesys_received)
        await bridge.agent_says(CUSTOMER, "Yes, in blue and green.")
        (whatsapp,) = await eventually(lambda: bridge.whatsapp_sent(to=CUSTOMER))
        await eventually(lambda: _outbound_row(bridge, whatsapp["wamid"]))

        reply = await _customer_sends(bridge, "text", text="Green please", context_id=whatsapp["wamid"])
        place = await _customer_sends(
            bridge, "location",
            content={"latitude": 37.44221496582, "longitude": -122.16165924072, "name": "Philz Coffee",
                     "address": "101 Forest Ave, Palo Alto, CA 94301"},
        )  # fmt: skip

        quoted = await eventually(lambda: _received_for(bridge, reply["wamid"]))
        assert quoted["body"]["text"] == '↪ Replying to: "Yes, in blue and green."\nGreen please'
        located = await eventually(lambda: _received_for(bridge, place["wamid"]))
        assert located["body"]["text"] == (
            "📍 Location: Philz Coffee\n101 Forest Ave, Palo Alto, CA 94301\n37.44221496582, -122.16165924072\n"
            "https://www.google.com/maps/search/?api=1&query=37.44221496582,-122.16165924072"
        )


async def test_a_button_answer_to_our_quick_replies_is_a_structured_response_sent_once(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "I want to change my order")
        await eventually(bridge.genesys_received)
        question = await bridge.agent_says(CUSTOMER, "Keep or cancel?")
        (whatsapp,) = await eventually(lambda: bridge.whatsapp_sent(to=CUSTOMER))
        await eventually(lambda: _outbound_row(bridge, whatsapp["wamid"]))
        # What the outbound path records when it turns Genesys quick replies into WhatsApp buttons.
        async with bridge.runtime.database.session() as session:
            row = await session.scalar(select(Message).where(Message.wamid == whatsapp["wamid"]))
            assert row is not None
            offered = MessageDetails(quick_replies=(
                OfferedChoice(id="qr-0", title="Keep it", payload="KEEP"),
                OfferedChoice(id="qr-1", title="Cancel it", payload="CANCEL"),
            ))  # fmt: skip
            await merge_details(session, tenant_id=row.tenant_id, message_id=row.id, update=offered)

        answer = await _customer_sends(
            bridge, "interactive", context_id=whatsapp["wamid"],
            content={"type": "button_reply", "button_reply": {"id": "qr-1", "title": "Cancel it"}},
        )  # fmt: skip
        structured = await eventually(lambda: _received_for(bridge, answer["wamid"], "structured"))
        assert structured["body"]["content"] == [
            {"contentType": "ButtonResponse", "buttonResponse": {"type": "QuickReply", "text": "Cancel it",
                                                                 "payload": "CANCEL"}}
        ]  # fmt: skip
        assert structured["body"]["originatingMessageId"] == question["id"]
        tracked = await eventually(lambda: _inbound_sent(bridge, answer["wamid"]))
        assert tracked.genesys_message_id == structured["id"]

        # Meta delivers the same webhook again: Genesys must not get the answer twice.
        inbound = next(i for i in await _meta_inbound(bridge) if i["wamid"] == answer["wamid"])
        again = await bridge.meta.post(
            "/_sandbox/webhooks/raw",
            json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "body": _envelope(bridge, inbound)},
        )
        assert again.json()["webhook_status"] == 200
        await bridge.customer_says(CUSTOMER, "thanks")
        await eventually(lambda: _has_text(bridge, "thanks"))
        assert len(await bridge.genesys_received("structured")) == 1


async def _outbound_row(bridge: Bridge, wamid: str) -> Message | None:
    async with bridge.runtime.database.session() as session:
        return await session.scalar(select(Message).where(Message.direction == "outbound", Message.wamid == wamid))


async def _inbound_sent(bridge: Bridge, wamid: str) -> Message | None:
    async with bridge.runtime.database.session() as session:
        row = await session.scalar(select(Message).where(Message.direction == "inbound", Message.wamid == wamid))
    return row if row is not None and row.status == "sent" else None


async def _meta_inbound(bridge: Bridge) -> list[dict[str, Any]]:
    answer = await bridge.meta.get("/_sandbox/inbound", params={"wa_id": CUSTOMER})
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()
    return result


def _envelope(bridge: Bridge, inbound: dict[str, Any]) -> dict[str, Any]:
    wa = bridge.demo["whatsapp"]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": wa["waba_id"], "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100", "phone_number_id": wa["phone_number_id"]},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}],
            "messages": [inbound["message"]],
        }}]}],
    }  # fmt: skip


async def _has_text(bridge: Bridge, text: str) -> bool:
    return any(item["body"].get("text") == text for item in await bridge.genesys_received())


async def _post_raw(bridge: Bridge, message: dict[str, Any], *, contact: bool = True) -> None:
    body = _envelope(bridge, {"message": message})
    if not contact:
        del body["entry"][0]["changes"][0]["value"]["contacts"]
    answer = await bridge.meta.post(
        "/_sandbox/webhooks/raw", json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "body": body}
    )
    assert answer.json()["webhook_status"] == 200


async def test_reactions_edits_and_deletions_quote_the_message_they_concern(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path)) as bridge:
        first = await bridge.customer_says(CUSTOMER, "Does it come in another color?")
        await eventually(lambda: _received_for(bridge, first["wamid"]))
        await bridge.agent_says(CUSTOMER, "Yes, in blue and green.")
        (whatsapp,) = await eventually(lambda: bridge.whatsapp_sent(to=CUSTOMER))
        await eventually(lambda: _outbound_row(bridge, whatsapp["wamid"]))

        reaction = await _customer_sends(bridge, "reaction", content={"message_id": whatsapp["wamid"], "emoji": "👍"})
        await _post_raw(
            bridge,
            {
                "from": CUSTOMER,
                "id": "wamid.edit-1",
                "timestamp": "1750104300",
                "type": "edit",
                "edit": {
                    "original_message_id": first["wamid"],
                    "message": {"type": "text", "text": {"body": "Does it come in green?"}},
                },
            },
        )
        await _post_raw(bridge, {"from": CUSTOMER, "id": "wamid.revoke-1", "timestamp": "1750104400",
                                 "type": "revoke", "revoke": {"original_message_id": first["wamid"]}})  # fmt: skip

        reacted = await eventually(lambda: _received_for(bridge, reaction["wamid"]))
        assert reacted["body"]["text"] == 'Reacted 👍 to: "Yes, in blue and green."'
        edited = await eventually(lambda: _received_for(bridge, "wamid.edit-1"))
        assert edited["body"]["text"] == (
            '✏️ The customer edited a message.\nBefore: "Does it come in another color?"\nNow: Does it come in green?'
        )
        deleted = await eventually(lambda: _received_for(bridge, "wamid.revoke-1"))
        # The deletion quotes the message as the customer last left it.
        assert deleted["body"]["text"] == '🗑 The customer deleted a message: "Does it come in green?"'


async def test_a_number_change_moves_the_conversation_and_tells_the_agent(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path)) as bridge:
        hello = await bridge.customer_says(CUSTOMER, "hello")
        await eventually(lambda: _received_for(bridge, hello["wamid"]))

        await _post_raw(
            bridge,
            {"from": CUSTOMER, "id": "wamid.system-1", "timestamp": "1750269342", "type": "system",
             "system": {"body": "User Sheena Nelson changed from 16505551234 to 12195555358",
                        "wa_id": "12195555358", "type": "user_changed_number"}},
            contact=False,
        )  # fmt: skip

        notice = await eventually(lambda: _received_for(bridge, "wamid.system-1"))
        assert notice["body"]["text"] == (
            "[The customer changed their WhatsApp number from 16505551234 to 12195555358. "
            "Their new messages come from 12195555358.]"
        )
        assert notice["body"]["channel"]["from"]["nickname"] == "Sheena Nelson"  # from state: no contacts block
        async with bridge.runtime.database.session() as session:
            (conversation,) = (await session.scalars(select(Conversation))).all()
        assert conversation.wa_id == "12195555358"


async def test_a_message_with_a_part_shaped_unexpectedly_still_reaches_the_agent(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path)) as bridge:
        odd = {"latitude": "north-ish", "longitude": []}
        await _post_raw(
            bridge,
            {"from": CUSTOMER, "id": "wamid.odd-1", "timestamp": "1750104500", "type": "location", "location": odd},
        )

        received = await eventually(lambda: _received_for(bridge, "wamid.odd-1"))
        assert received["body"]["text"] == "[The customer sent a location message, which cannot be shown here.]"
