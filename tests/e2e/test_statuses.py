"""Meta statuses of agent messages become Genesys receipts once; value-level errors are reported; both backends."""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from typing import Any

from sqlalchemy import func, select

from tests.support.bridge import Bridge, eventually, running_bridge
from tests.support.contracts import contract
from xypr.config import Settings
from xypr.state.details import MessageDetails
from xypr.state.models import Conversation, Message, MessageStatus
from xypr.topology import SEND_GENESYS

CUSTOMER = "16505551234"


async def _receipts(bridge: Bridge) -> list[dict[str, Any]]:
    return await bridge.genesys_received("receipt")


async def _receipts_settled(bridge: Bridge) -> list[dict[str, Any]]:
    """The receipts once `send.genesys` is empty: receipts take that queue while customer messages take one hop,
    so a customer message that reached Genesys no longer proves the receipts before it did."""

    async def drained() -> bool:
        return await bridge.runtime.broker.depth(SEND_GENESYS) == 0

    await eventually(drained)
    await asyncio.sleep(0.3)  # a receipt taken from the queue a moment ago is being sent
    return await _receipts(bridge)


async def _message_row(bridge: Bridge, genesys_message_id: str) -> Message | None:
    async with bridge.runtime.database.session() as session:
        return await session.scalar(select(Message).where(Message.genesys_message_id == genesys_message_id))


async def _status_is(bridge: Bridge, genesys_message_id: str, status: str) -> bool:
    row = await _message_row(bridge, genesys_message_id)
    return row is not None and row.status == status


async def _post_meta(bridge: Bridge, body: dict[str, Any]) -> None:
    answer = await bridge.meta.post(
        "/_sandbox/webhooks/raw", json={"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "body": body}
    )
    answer.raise_for_status()
    assert answer.json()["webhook_status"] == 200, answer.json()


def _status_webhook(bridge: Bridge, wamid: str, status: str, **extra: Any) -> dict[str, Any]:
    wa = bridge.demo["whatsapp"]
    item = {"id": wamid, "status": status, "timestamp": "1763719200", "recipient_id": CUSTOMER, **extra}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": wa["waba_id"], "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100", "phone_number_id": wa["phone_number_id"]},
            "statuses": [item],
        }}]}],
    }  # fmt: skip


async def _tracked_agent_message(bridge: Bridge, *, wamids: list[str], status: str = "sent") -> str:
    """An agent message as whatsapp-api leaves it after Meta accepted it; returns its Genesys id."""
    await bridge.customer_says(CUSTOMER, "hello")
    await eventually(bridge.genesys_received)
    genesys_message_id = str(uuid.uuid4())
    async with bridge.runtime.database.session() as session:
        conversation = await session.scalar(select(Conversation).where(Conversation.wa_id == CUSTOMER))
        assert conversation is not None
        session.add(
            Message(
                tenant_id=conversation.tenant_id,
                conversation_id=conversation.id,
                direction="outbound",
                wamid=wamids[0] if status != "received" else None,
                genesys_message_id=genesys_message_id,
                kind="text",
                status=status,
                text="agent text",
                details=MessageDetails(wamids=tuple(wamids)) if len(wamids) > 1 else None,
            )
        )
    return genesys_message_id


async def _metric(bridge: Bridge, name: str, **labels: str) -> float:
    text = (await bridge.client.get("/metrics")).text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


async def test_agent_message_delivered_then_read_reaches_genesys_as_one_delivered_receipt(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "Where is my order?")
        await eventually(bridge.genesys_received)

        reply = await bridge.agent_says(CUSTOMER, "It ships today.")

        await eventually(lambda: _status_is(bridge, reply["id"], "read"))
        (receipt,) = await eventually(lambda: _receipts(bridge))
        assert receipt["body"]["id"] == reply["id"]
        assert receipt["body"]["status"] == "Delivered"
        assert receipt["body"]["isFinalReceipt"] is True
        assert receipt["body"]["channel"]["to"] == {"id": CUSTOMER, "idType": "Phone"}
        assert receipt["matched_outbound"] is True  # Genesys knows the id: it is the agent's message
        statuses = await bridge.meta.get("/_sandbox/statuses", params={"to": CUSTOMER})
        assert [s["status"] for s in statuses.json()] == ["sent", "delivered", "read"]
        await asyncio.sleep(0.3)
        assert len(await _receipts(bridge)) == 1


async def test_agent_message_failed_with_131047_reaches_genesys_as_failed_receipt_message_expired(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "hi")
        await eventually(bridge.genesys_received)
        fault = {"phone_number_id": bridge.demo["whatsapp"]["phone_number_id"], "code": 131047, "mode": "status"}
        (await bridge.meta.post("/_sandbox/faults", json=fault)).raise_for_status()

        reply = await bridge.agent_says(CUSTOMER, "Are you still there?")

        (receipt,) = await eventually(lambda: _receipts(bridge))
        assert receipt["body"]["id"] == reply["id"]
        assert receipt["body"]["status"] == "Failed"
        (reason,) = receipt["body"]["reasons"]
        assert reason["code"] == "MessageExpired"
        assert reason["message"].startswith("(131047) Re-engagement message")
        await eventually(lambda: _status_is(bridge, reply["id"], "failed"))
        row = await _message_row(bridge, reply["id"])
        assert row is not None
        assert row.error is not None
        assert row.error.startswith("MessageExpired: (131047)")


async def test_redelivered_status_webhooks_create_nothing_twice(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        await bridge.customer_says(CUSTOMER, "hi")
        await eventually(bridge.genesys_received)
        reply = await bridge.agent_says(CUSTOMER, "once")
        await eventually(lambda: _status_is(bridge, reply["id"], "read"))
        posted = (await bridge.meta.get("/_sandbox/statuses", params={"to": CUSTOMER})).json()

        for _ in range(3):  # Meta redelivers for days; every status again, out of order too
            for record in reversed(posted):
                await _post_meta(bridge, record["body"])
        await bridge.agent_says(CUSTOMER, "twice")  # a later message proves the redeliveries were handled
        await eventually(lambda: _count_at_least(bridge, 2))
        await asyncio.sleep(0.3)

        receipts = await _receipts(bridge)
        assert [r["body"]["status"] for r in receipts] == ["Delivered", "Delivered"]
        assert len({r["body"]["id"] for r in receipts}) == 2
        async with bridge.runtime.database.session() as session:
            rows = await session.scalar(
                select(func.count()).select_from(MessageStatus).where(MessageStatus.wamid == posted[0]["wamid"])
            )
        assert rows == 3  # sent, delivered, read: one row each


async def _count_at_least(bridge: Bridge, count: int) -> bool:
    return len(await _receipts(bridge)) >= count


async def test_read_without_delivered_sends_one_delivered_receipt_and_late_delivered_nothing(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        genesys_id = await _tracked_agent_message(bridge, wamids=["wamid.READ-FIRST"])

        await _post_meta(bridge, _status_webhook(bridge, "wamid.READ-FIRST", "read"))
        await eventually(lambda: _status_is(bridge, genesys_id, "read"))
        await _post_meta(bridge, _status_webhook(bridge, "wamid.READ-FIRST", "delivered"))
        await _post_meta(bridge, _status_webhook(bridge, "wamid.READ-FIRST", "failed"))
        await bridge.customer_says(CUSTOMER, "after")  # same conversation, same queue: handled after those
        await eventually(lambda: _has_text(bridge, "after"))

        await eventually(lambda: _receipts(bridge))
        (receipt,) = await _receipts_settled(bridge)
        assert receipt["body"]["id"] == genesys_id
        assert receipt["body"]["status"] == "Delivered"
        assert receipt["body"]["channel"]["time"] == "2025-11-21T10:00:00.000Z"
        assert await _status_is(bridge, genesys_id, "read")  # never moved back, failure after Delivered ignored


async def _has_text(bridge: Bridge, text: str) -> bool:
    return any(item["body"].get("text") == text for item in await bridge.genesys_received())


async def test_split_text_is_delivered_once_when_every_part_is(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        parts = ["wamid.PART-1", "wamid.PART-2", "wamid.PART-3"]
        genesys_id = await _tracked_agent_message(bridge, wamids=parts)

        for part in parts[:2]:
            await _post_meta(bridge, _status_webhook(bridge, part, "delivered"))
        await bridge.customer_says(CUSTOMER, "between")
        await eventually(lambda: _has_text(bridge, "between"))
        assert await _receipts_settled(bridge) == []

        await _post_meta(bridge, _status_webhook(bridge, parts[2], "delivered"))
        (receipt,) = await eventually(lambda: _receipts(bridge))
        assert receipt["body"]["id"] == genesys_id
        assert receipt["body"]["status"] == "Delivered"
        await _post_meta(bridge, _status_webhook(bridge, parts[0], "read"))
        await bridge.customer_says(CUSTOMER, "later")
        await eventually(lambda: _has_text(bridge, "later"))
        assert len(await _receipts_settled(bridge)) == 1


async def test_status_arriving_before_the_send_is_recorded_waits_for_it(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        genesys_id = await _tracked_agent_message(bridge, wamids=["wamid.EARLY"], status="received")

        await _post_meta(bridge, _status_webhook(bridge, "wamid.EARLY", "delivered"))
        await asyncio.sleep(0.2)
        async with bridge.runtime.database.session() as session:  # whatsapp-api records Meta's answer
            row = await session.scalar(select(Message).where(Message.genesys_message_id == genesys_id))
            assert row is not None
            row.wamid, row.status = "wamid.EARLY", "sent"

        (receipt,) = await eventually(lambda: _receipts(bridge))
        assert receipt["body"]["id"] == genesys_id
        assert receipt["body"]["status"] == "Delivered"


async def test_status_of_a_message_sent_by_another_tool_is_counted_and_ignored(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        before = await _metric(bridge, "xypr_whatsapp_statuses_total", status="delivered", outcome="unknown_message")
        body = copy.deepcopy(contract("meta/webhook-status-delivered.json"))
        value = body["entry"][0]["changes"][0]["value"]
        value["metadata"]["phone_number_id"] = bridge.demo["whatsapp"]["phone_number_id"]
        value["statuses"][0]["surprise"] = {"new": "field"}  # unknown fields: kept, logged, counted

        await _post_meta(bridge, body)

        await eventually(
            lambda: _metric_above(bridge, before, status="delivered", outcome="unknown_message"), within=10
        )
        assert await _receipts(bridge) == []
        assert await bridge.runtime.broker.dead_letters() == []


async def _metric_above(bridge: Bridge, before: float, **labels: str) -> bool:
    return await _metric(bridge, "xypr_whatsapp_statuses_total", **labels) > before


async def test_value_level_error_and_unknown_fields_are_logged_and_counted_and_break_nothing(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        before = await _metric(bridge, "xypr_whatsapp_errors_total", code="130429")
        unknown_before = await _metric(bridge, "xypr_whatsapp_unknown_fields_total", where="value")
        body = copy.deepcopy(contract("meta/webhook-value-errors-130429.json"))
        value = body["entry"][0]["changes"][0]["value"]
        value["metadata"]["phone_number_id"] = bridge.demo["whatsapp"]["phone_number_id"]
        value["new_thing_from_meta"] = {"shape": "unknown"}

        await _post_meta(bridge, body)
        await bridge.customer_says(CUSTOMER, "still working")

        await eventually(lambda: _has_text(bridge, "still working"))

        async def counted() -> bool:
            return await _metric(bridge, "xypr_whatsapp_errors_total", code="130429") > before

        await eventually(counted, within=10)
        assert await _metric(bridge, "xypr_whatsapp_unknown_fields_total", where="value") == unknown_before + 1
        assert await bridge.runtime.broker.dead_letters() == []
