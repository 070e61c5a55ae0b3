"""`POST /transform/outbound` (pure, for tools) and `POST /transform/outbound/send/template`, behind the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import Bridge, eventually, running_bridge, tenant_spec
from tests.support.contracts import contract
from xypr.auth.principal import Role
from xypr.backends.broker.base import BrokerUnavailable, OutgoingMessage
from xypr.state.models import Conversation, Message

CUSTOMER = "16505551234"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running_bridge(embedded_settings(tmp_path)) as running:
        yield running


async def _conversation(bridge: Bridge) -> Conversation:
    await bridge.customer_says(CUSTOMER, "Hello")

    async def mapped() -> Conversation | None:
        async with bridge.runtime.database.session() as session:
            found = await session.scalar(select(Conversation).where(Conversation.wa_id == CUSTOMER))
        return found if found is not None and found.genesys_conversation_id else None

    return await eventually(mapped)


async def test_transform_outbound_answers_the_graph_bodies_and_sends_nothing(bridge: Bridge) -> None:
    agent = await login_as(bridge, Role.AGENT)
    message = contract("genesys/captured-openmessaging-outbound-attachment-image.json")

    answer = await bridge.client.post(
        "/transform/outbound", json={**message, "text": "Your photo", "to": CUSTOMER}, headers=agent
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "messages": [{"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER,
                      "type": "image", "image": {"caption": "Your photo"}}],
        "quickReplies": [],
        "media": [{"part": 0, "url": message["content"][0]["attachment"]["url"], "mimeType": "image/jpeg",
                   "type": "image", "maxBytes": 5 * 1024 * 1024, "filename": "image.jpg"}],
        "template": False,
        "failed": None,
    }  # fmt: skip
    assert await bridge.whatsapp_sent() == []


async def test_transform_outbound_of_a_typing_event_needs_the_customers_message(bridge: Bridge) -> None:
    agent = await login_as(bridge, Role.AGENT)
    event = contract("genesys/outbound-event-typing.json")

    missing = await bridge.client.post("/transform/outbound", json=event, headers=agent)
    given = await bridge.client.post("/transform/outbound", json={**event, "wamid": "wamid.X"}, headers=agent)

    assert missing.status_code == 200  # a well-formed request: the answer says what would happen
    assert missing.json()["messages"] == []
    assert missing.json()["failed"]["reason"] == "InvalidMessageStructure"
    assert given.json()["messages"] == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.X",
            "typing_indicator": {"type": "text"},
        }
    ]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"type": "Text", "content": [{"contentType": "Attachment", "attachment": {"mediaType": "Image",
          "url": "https://api.usw2.pure.cloud/x.gif", "mime": "image/gif"}}]}, 200, "MediaTypeNotAllowed"),
        ({"type": "Structured", "content": [{"contentType": "Story"}]}, 200, "UnsupportedMessage"),
        ({"type": "Text", "channel": "not an object"}, 400, None),
    ],
)  # fmt: skip
async def test_transform_outbound_answers_the_failed_receipt_of_what_whatsapp_cannot_take(
    bridge: Bridge, body: dict[str, Any], status: int, reason: str | None
) -> None:
    agent = await login_as(bridge, Role.AGENT)
    message = {**contract("genesys/captured-openmessaging-outbound-text.json"), "text": None, **body}

    answer = await bridge.client.post("/transform/outbound", json=message, headers=agent)

    assert answer.status_code == status, answer.text
    if reason is None:
        assert answer.json()["error"]["code"] == "bad_request"
    else:
        assert answer.json()["messages"] == []
        assert answer.json()["failed"]["reason"] == reason


async def test_the_transform_endpoints_need_a_login(bridge: Bridge) -> None:
    message = contract("genesys/captured-openmessaging-outbound-text.json")
    template = {"conversationId": "x", "templateName": "hello_world", "language": "en_US"}

    assert (await bridge.client.post("/transform/outbound", json=message)).status_code == 401
    assert (await bridge.client.post("/transform/outbound/send/template", json=template)).status_code == 401


async def test_an_agent_sends_a_template_to_the_customer_of_a_conversation_of_its_tenant(bridge: Bridge) -> None:
    conversation = await _conversation(bridge)
    agent = await login_as(bridge, Role.AGENT)

    answer = await bridge.client.post(
        "/transform/outbound/send/template",
        json={"conversationId": conversation.genesys_conversation_id, "templateName": "ns@order_update",
              "language": "en-US", "parameters": ["Ana", {"name": "order", "text": "#42"}],
              "buttonParams": [{"index": 0, "type": "quick_reply", "payload": "TRACK-42"},
                               {"index": 1, "type": "url", "text": "42"}],
              "header": {"type": "image", "link": "https://shop.example/banner.png"}},
        headers=agent,
    )  # fmt: skip

    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    (sent,) = await eventually(bridge.whatsapp_sent)
    assert sent["body"]["to"] == CUSTOMER
    assert sent["body"]["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://shop.example/banner.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                            {"type": "text", "text": "#42", "parameter_name": "order"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "TRACK-42"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "42"}]},
        ],
    }  # fmt: skip

    async def tracked() -> Message | None:
        async with bridge.runtime.database.session() as session:
            row = await session.get(Message, answer.json()["messageId"])
        return row if row is not None and row.status == "sent" else None

    row = await eventually(tracked)
    assert (row.kind, row.wamid, row.conversation_id) == ("template", sent["wamid"], conversation.id)


async def test_a_template_to_another_tenants_conversation_is_not_found_but_a_xypr_admin_may_send_it(
    bridge: Bridge,
) -> None:
    conversation = await _conversation(bridge)
    other = tenant_spec()
    await bridge.add_tenant(other)
    outsider = await login_as(bridge, Role.TENANT_ADMIN, other)
    admin = await login_as(bridge, Role.XYPR_ADMIN)
    request = {"conversationId": conversation.id, "templateName": "hello_world", "language": "en_US"}

    refused = await bridge.client.post("/transform/outbound/send/template", json=request, headers=outsider)
    accepted = await bridge.client.post("/transform/outbound/send/template", json=request, headers=admin)

    assert refused.status_code == 404
    assert accepted.status_code == 202, accepted.text
    (sent,) = await eventually(bridge.whatsapp_sent)
    assert sent["body"]["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


@pytest.mark.parametrize(
    ("change", "field"),
    [({"templateName": ""}, "templateName"), ({"language": "english please"}, "language"),
     ({"buttonParams": [{"index": 12, "payload": "x"}]}, "buttonParams.0.index"),
     ({"header": {"type": "image"}}, "header"), ({"header": {"type": "image", "link": "http://x"}}, "header.link"),
     ({"surprise": 1}, "surprise")],
)  # fmt: skip
async def test_a_bad_template_request_is_a_400_naming_the_field(
    bridge: Bridge, change: dict[str, Any], field: str
) -> None:
    agent = await login_as(bridge, Role.AGENT)
    request = {"conversationId": "c", "templateName": "hello_world", "language": "en_US", **change}

    answer = await bridge.client.post("/transform/outbound/send/template", json=request, headers=agent)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"].startswith(field)


async def test_a_template_the_broker_cannot_take_is_a_503_and_its_message_is_failed_not_left_queued(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = await _conversation(bridge)
    agent = await login_as(bridge, Role.AGENT)

    async def refuse(queue: str, messages: Sequence[OutgoingMessage]) -> None:
        raise BrokerUnavailable("the broker is down")

    monkeypatch.setattr(bridge.runtime.broker, "publish", refuse)
    answer = await bridge.client.post(
        "/transform/outbound/send/template",
        json={"conversationId": conversation.id, "templateName": "order_update", "language": "en"},
        headers=agent,
    )

    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["message"] == "cannot queue the template right now; retry later"
    assert answer.headers["retry-after"] == "5"
    async with bridge.runtime.database.session() as session:
        (row,) = (await session.scalars(select(Message).where(Message.kind == "template"))).all()
    assert (row.status, row.error) == ("failed", "ServerError: the broker was unavailable; nothing was sent")
    assert await bridge.whatsapp_sent() == []
