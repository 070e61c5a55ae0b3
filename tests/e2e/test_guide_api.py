"""The setup guide's API calls, sent as the guide writes them (its field names, its shapes), get 2xx answers
that do what the guide says — camelCase answers with RFC 3339 UTC times."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.auth.principal import Role
from xypr.state.models import Conversation, Message

CUSTOMER = "16505551234"
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running_bridge(embedded_settings(tmp_path)) as running:
        yield running


async def test_the_guides_mapping_body_creates_then_returns_the_mapping(bridge: Bridge) -> None:
    admin = await login_as(bridge, Role.TENANT_ADMIN)
    number = bridge.demo["whatsapp"]["phone_number_id"]
    body = {"waId": CUSTOMER, "contactName": "Sheena Nelson", "phoneNumberId": number,
            "displayPhoneNumber": "+1 555 0100"}  # fmt: skip

    created = await bridge.client.post("/state/mapping", json=body, headers=admin)
    again = await bridge.client.post("/state/mapping", json=body, headers=admin)
    elsewhere = await bridge.client.post("/state/mapping", json={**body, "phoneNumberId": "999"}, headers=admin)

    assert created.status_code == 201, created.text
    assert again.status_code == 200, again.text
    assert again.json()["conversationId"] == created.json()["conversationId"]
    assert created.json()["customerName"] == "Sheena Nelson"
    assert created.json()["createdAt"].endswith("Z")
    assert elsewhere.status_code == 404  # not the tenant's number
    assert elsewhere.json()["error"]["field"] == "phoneNumberId"


async def test_the_guides_message_body_tracks_the_message_in_the_named_conversation(bridge: Bridge) -> None:
    admin = await login_as(bridge, Role.TENANT_ADMIN)
    mapping = await bridge.client.post(
        "/state/mapping", json={"waId": CUSTOMER, "contactName": "Sheena"}, headers=admin
    )
    conversation_id = mapping.json()["conversationId"]

    tracked = await bridge.client.post(
        "/state/message",
        json={"metaMessageId": WAMID, "genesysMessageId": "gm-1", "conversationId": conversation_id,
              "direction": "inbound"},
        headers=admin,
    )  # fmt: skip
    unknown = await bridge.client.post(
        "/state/message",
        json={"metaMessageId": "wamid.other", "conversationId": "no-such-conversation", "direction": "inbound"},
        headers=admin,
    )

    assert tracked.status_code == 201, tracked.text
    assert tracked.json()["wamid"] == WAMID
    assert tracked.json()["genesysMessageId"] == "gm-1"
    assert tracked.json()["conversationId"] == conversation_id
    assert unknown.status_code == 404
    async with bridge.runtime.database.session() as session:
        stored = await session.scalar(select(Message).where(Message.wamid == WAMID))
    assert stored is not None
    assert stored.conversation_id == conversation_id


async def test_transform_inbound_answers_the_open_messaging_message_and_sends_nothing(bridge: Bridge) -> None:
    agent = await login_as(bridge, Role.AGENT)

    text = await bridge.client.post(
        "/transform/inbound",
        json={"messageId": WAMID, "from": CUSTOMER, "contactName": "Sheena Nelson", "timestamp": "1763805490",
              "type": "text", "content": {"text": "Does it come in another color?"}},
        headers=agent,
    )  # fmt: skip
    image = await bridge.client.post(
        "/transform/inbound",
        json={"messageId": "wamid.2", "from": CUSTOMER, "timestamp": "2026-11-22T09:58:10Z", "type": "image",
              "content": {"url": "https://media.example.com/p.jpg", "mimeType": "image/jpeg", "caption": "This"}},
        headers=agent,
    )  # fmt: skip

    assert text.status_code == 200, text.text
    assert text.json() == {
        "kind": "message",
        "endpoint": "/api/v2/conversations/messages/{integrationId}/inbound/open/message",
        "message": {
            "channel": {"messageId": WAMID, "time": "2025-11-22T09:58:10.000Z",
                        "from": {"id": CUSTOMER, "idType": "Phone", "nickname": "Sheena Nelson",
                                 "firstName": "Sheena", "lastName": "Nelson"}},
            "text": "Does it come in another color?",
        },
    }  # fmt: skip
    assert image.status_code == 200, image.text
    assert image.json()["message"]["channel"]["time"] == "2026-11-22T09:58:10.000Z"
    assert image.json()["message"]["content"] == [
        {"contentType": "Attachment",
         "attachment": {"mediaType": "Image", "url": "https://media.example.com/p.jpg", "mime": "image/jpeg",
                        "text": "This"}}
    ]  # fmt: skip
    assert await bridge.genesys_received() == []


async def test_the_guides_template_call_sends_in_the_tenants_language_with_the_url_button(bridge: Bridge) -> None:
    await bridge.customer_says(CUSTOMER, "Hello")

    async def mapped() -> Conversation | None:
        async with bridge.runtime.database.session() as session:
            found = await session.scalar(select(Conversation).where(Conversation.wa_id == CUSTOMER))
        return found if found is not None and found.genesys_conversation_id else None

    conversation = await eventually(mapped)
    agent = await login_as(bridge, Role.AGENT)

    answer = await bridge.client.post(
        "/transform/outbound/send/template",
        json={"conversationId": conversation.genesys_conversation_id, "templateName": "order_update",
              "parameters": ["A-1042"], "buttonParams": "https://shop.example.com/o/A-1042"},
        headers=agent,
    )  # fmt: skip

    assert answer.status_code == 202, answer.text
    sent = await eventually(bridge.whatsapp_sent)
    template = sent[-1]["body"]["template"]
    assert template["language"] == {"code": "en_US"}  # the demo tenant sets no template_language
    assert template["components"][-1] == {
        "type": "button", "sub_type": "url", "index": "0",
        "parameters": [{"type": "text", "text": "https://shop.example.com/o/A-1042"}],
    }  # fmt: skip
