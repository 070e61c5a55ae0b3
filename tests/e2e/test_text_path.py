"""A text each way through every service, on the embedded backends and on the real local services."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.config import Settings
from xypr.genesys import signature as genesys_signature
from xypr.services.genesys_api import worker as genesys_api_worker
from xypr.state.models import Conversation, Message
from xypr.state.service import SendState

CUSTOMER = "16505551234"


async def _received_texts(bridge: Bridge) -> list[str]:
    return [item["body"].get("text") for item in await bridge.genesys_received()]


async def test_customer_text_reaches_genesys_and_agent_text_reaches_whatsapp(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        sent = await bridge.customer_says(CUSTOMER, "Does it come in another color?")
        assert sent["webhook_status"] == 200

        received = await eventually(bridge.genesys_received)
        (message,) = received
        assert message["body"]["text"] == "Does it come in another color?"
        assert message["body"]["channel"]["messageId"] == sent["wamid"]
        assert message["body"]["channel"]["from"]["id"] == CUSTOMER
        assert message["body"]["channel"]["from"]["nickname"] == "Sheena Nelson"

        reply = await bridge.agent_says(CUSTOMER, "Yes, in blue and green.")
        assert reply["webhook_status"] == 200

        (whatsapp,) = await eventually(lambda: bridge.whatsapp_sent(to=CUSTOMER))
        assert whatsapp["body"]["text"]["body"] == "Yes, in blue and green."
        assert whatsapp["body"]["to"] == CUSTOMER

        async def tracked() -> list[Message] | None:
            async with bridge.runtime.database.session() as session:
                rows = list((await session.scalars(select(Message).order_by(Message.created_at))).all())
            return rows if all(row.status == "sent" for row in rows) and len(rows) == 2 else None

        inbound, outbound = await eventually(tracked)
        assert (inbound.direction, inbound.wamid, inbound.genesys_message_id) == (
            "inbound",
            sent["wamid"],
            message["id"],
        )
        assert (outbound.direction, outbound.genesys_message_id) == ("outbound", reply["id"])
        assert outbound.wamid == whatsapp["wamid"]
        async with bridge.runtime.database.session() as session:
            conversation = await session.scalar(select(Conversation))
        assert conversation is not None
        assert conversation.wa_id == CUSTOMER
        assert conversation.genesys_conversation_id == message["conversationId"]


async def test_a_redelivered_webhook_reaches_genesys_once(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        first = await bridge.customer_says(CUSTOMER, "hello once")
        await eventually(bridge.genesys_received)
        body = _meta_text_webhook(bridge, wamid=first["wamid"], text="hello once")
        for _ in range(3):  # Meta redelivers; so may a confused proxy
            answer = await bridge.meta.post(
                "/_sandbox/webhooks/raw",
                json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "body": body},
            )
            assert answer.json()["webhook_status"] == 200
        await bridge.customer_says(CUSTOMER, "second message")
        await eventually(lambda: _has(bridge, "second message"))
        assert await _received_texts(bridge) == ["hello once", "second message"]


async def test_a_retried_genesys_webhook_sends_to_whatsapp_once(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "hi")
        await eventually(bridge.genesys_received)
        reply = await bridge.agent_says(CUSTOMER, "only once please")
        await eventually(lambda: bridge.whatsapp_sent(to=CUSTOMER))
        raw = _genesys_text_webhook(bridge, genesys_id=reply["id"], text="only once please")
        for _ in range(3):
            answer = await _post_genesys(bridge, raw)
            assert answer.status_code == 200
        await bridge.agent_says(CUSTOMER, "and this after")
        await eventually(lambda: _sent_count(bridge, 2))
        await asyncio.sleep(0.3)
        texts = [item["body"]["text"]["body"] for item in await bridge.whatsapp_sent(to=CUSTOMER)]
        assert texts == ["only once please", "and this after"]


async def _has(bridge: Bridge, text: str) -> bool:
    return text in await _received_texts(bridge)


async def _sent_count(bridge: Bridge, count: int) -> bool:
    return len(await bridge.whatsapp_sent(to=CUSTOMER)) >= count


def _meta_text_webhook(bridge: Bridge, *, wamid: str, text: str) -> dict[str, Any]:
    wa = bridge.demo["whatsapp"]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": wa["waba_id"], "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100", "phone_number_id": wa["phone_number_id"]},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}],
            "messages": [{"from": CUSTOMER, "id": wamid, "timestamp": "1749416383", "type": "text",
                          "text": {"body": text}}],
        }}]}],
    }  # fmt: skip


def _genesys_text_webhook(bridge: Bridge, *, genesys_id: str, text: str) -> bytes:
    integration = bridge.demo["genesys"]["integration_id"]
    return orjson.dumps(
        {
            "id": genesys_id,
            "channel": {"id": integration, "platform": "Open", "type": "Private", "messageId": genesys_id,
                        "to": {"id": CUSTOMER, "idType": "Phone"},
                        "from": {"nickname": "Agent", "id": integration, "idType": "Opaque"},
                        "time": "2026-11-21T10:00:00.000Z"},
            "direction": "Outbound", "originatingEntity": "Human", "type": "Text", "text": text, "content": [],
        }
    )  # fmt: skip


async def _post_genesys(bridge: Bridge, raw: bytes, *, secret: str | None = None) -> Any:
    header = genesys_signature.sign(secret or bridge.demo["genesys"]["webhook_secret"], raw)
    return await bridge.client.post(
        "/webhook/genesys", content=raw, headers={"X-Hub-Signature-256": header, "Content-Type": "application/json"}
    )


async def test_one_hop_a_new_message_is_sent_without_reading_its_row_back_a_retried_one_reads_it(
    backend_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str | None] = []
    real_send_state = genesys_api_worker.send_state

    async def counted(database: Any, *, tenant_id: str, message_id: str) -> SendState | None:
        state = await real_send_state(database, tenant_id=tenant_id, message_id=message_id)
        reads.append(state.status if state is not None else None)
        return state

    monkeypatch.setattr(genesys_api_worker, "send_state", counted)
    assert backend_settings.direct_send
    async with running_bridge(backend_settings) as bridge:

        async def texts(count: int) -> list[str] | None:
            found = await _received_texts(bridge)
            return found if len(found) >= count else None

        await bridge.customer_says(CUSTOMER, "one")
        await eventually(lambda: texts(1))
        await bridge.customer_says(CUSTOMER, "two")  # its conversation now has a Genesys id
        await eventually(lambda: texts(2))
        assert reads == []  # the transformer created both rows a moment before: nothing to read back

        # Genesys refuses the next call once: the transformer's retry finds the row tracked and reads it.
        (await bridge.genesys.post("/_sandbox/faults", json={"status": 503, "count": 1})).raise_for_status()
        await bridge.customer_says(CUSTOMER, "three")
        assert await eventually(lambda: texts(3)) == ["one", "two", "three"]
        assert reads == ["received"]

        # After a media copy (it may take long) the row is read back before the send, as if queued.
        phone_number_id = bridge.demo["whatsapp"]["phone_number_id"]
        image = {"phone_number_id": phone_number_id, "data_base64": "/9j/4AAQ", "mime_type": "image/jpeg"}
        media_id = (await bridge.meta.post("/_sandbox/media", json=image)).json()["id"]
        photo = {"phone_number_id": phone_number_id, "type": "image", "media_id": media_id, "caption": "four"}
        (await bridge.meta.post(f"/_sandbox/customers/{CUSTOMER}/messages", json=photo)).raise_for_status()
        assert (await eventually(lambda: texts(4)))[3] == "four"
        assert reads == ["received", "received"]

        async def all_sent() -> bool:
            # Genesys has the message before its answer is back and the send recorded: look until it is.
            async with bridge.runtime.database.session() as session:
                statuses = (await session.scalars(select(Message.status).where(Message.direction == "inbound"))).all()
            return list(statuses) == ["sent"] * 4

        await eventually(all_sent)
        async with bridge.runtime.database.session() as session:
            conversation = await session.scalar(select(Conversation).where(Conversation.wa_id == CUSTOMER))
        assert conversation is not None
        (first, *_) = await bridge.genesys_received()
        assert conversation.genesys_conversation_id == first["conversation_id"]
