"""Every kind of agent message through the running bridge to the emulated Meta, and every failure back as a receipt."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from tests.conftest import embedded_settings
from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.config import Settings
from xypr.genesys import signature as genesys_signature
from xypr.services.whatsapp_api import worker as whatsapp_api_worker
from xypr.state.details import OfferedChoice
from xypr.state.models import Conversation, Message
from xypr.state.service import SendState
from xypr.tenants.models import Tenant

CUSTOMER = "16505551234"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running_bridge(embedded_settings(tmp_path)) as running:
        await _customer_wrote(running)
        yield running


async def _customer_wrote(bridge: Bridge, customer: str = CUSTOMER) -> str:
    """The customer writes first (opens the 24-hour window on both sides); returns the wamid."""
    sent = await bridge.customer_says(customer, "Hi, I have a question")

    async def recorded() -> bool:
        async with bridge.runtime.database.session() as session:
            conversation = await session.scalar(select(Conversation).where(Conversation.wa_id == customer))
        return conversation is not None and conversation.last_customer_message_at is not None

    await eventually(recorded)
    return str(sent["wamid"])


async def _agent(bridge: Bridge, *, text: str | None = None, content: list[dict[str, Any]] | None = None) -> str:
    """The agent sends a message in Genesys; returns its Genesys id."""
    body: dict[str, Any] = {"to": CUSTOMER, "type": "Structured" if content and text is None else "Text"}
    if text is not None:
        body["text"] = text
    if content:
        body["content"] = content
        body["type"] = "Structured" if content[0]["contentType"] != "Attachment" else "Text"
    integration = bridge.demo["genesys"]["integration_id"]
    answer = await bridge.genesys.post(f"/_sandbox/integrations/{integration}/agent/messages", json=body)
    answer.raise_for_status()
    assert answer.json()["webhook_status"] == 200
    return str(answer.json()["id"])


async def _raw(bridge: Bridge, body: dict[str, Any]) -> None:
    """Genesys posts this exact body (a typing event, a receipt, or a retry of a message)."""
    raw = orjson.dumps(body)
    header = genesys_signature.sign(bridge.demo["genesys"]["webhook_secret"], raw)
    answer = await bridge.client.post(
        "/webhook/genesys", content=raw, headers={"X-Hub-Signature-256": header, "Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text


def _envelope(bridge: Bridge, genesys_id: str, **fields: Any) -> dict[str, Any]:
    integration = bridge.demo["genesys"]["integration_id"]
    return {
        "id": genesys_id,
        "channel": {"id": integration, "platform": "Open", "type": "Private", "messageId": genesys_id,
                    "to": {"id": CUSTOMER}, "from": {"nickname": "Agent", "id": integration, "idType": "Opaque"},
                    "time": "2026-01-05T10:00:00.000Z"},
        "direction": "Outbound",
        **fields,
    }  # fmt: skip


async def _sent(bridge: Bridge) -> list[dict[str, Any]]:
    return await bridge.whatsapp_sent(to=CUSTOMER)


async def _sent_count(bridge: Bridge, count: int) -> list[dict[str, Any]] | None:
    sent = await _sent(bridge)
    return sent if len(sent) >= count else None


async def _failed_receipts(bridge: Bridge) -> list[dict[str, Any]]:
    return [r["body"] for r in await bridge.genesys_received("receipt") if r["body"]["status"] == "Failed"]


async def _receipt_for(bridge: Bridge, genesys_id: str) -> dict[str, Any]:
    async def found() -> list[dict[str, Any]]:
        return [r for r in await _failed_receipts(bridge) if r["id"] == genesys_id]

    (receipt,) = await eventually(found)
    return receipt


async def _row(bridge: Bridge, genesys_id: str) -> Message:
    async def settled() -> Message | None:
        async with bridge.runtime.database.session() as session:
            row = await session.scalar(select(Message).where(Message.genesys_message_id == genesys_id))
        return row if row is not None and row.status != "received" else None

    return await eventually(settled)


async def _attachment(bridge: Bridge, data: bytes, mime: str, filename: str) -> dict[str, Any]:
    answer = await bridge.genesys.post(
        "/_sandbox/attachments",
        json={"data_base64": base64.b64encode(data).decode(), "mime_type": mime, "filename": filename},
    )
    answer.raise_for_status()
    attachment: dict[str, Any] = answer.json()
    return attachment


async def _downloads(bridge: Bridge) -> list[str]:
    answer = await bridge.genesys.get("/_sandbox/attachments/downloads")
    downloads: list[str] = answer.json()
    return downloads


async def test_quick_replies_reach_whatsapp_as_reply_buttons_and_keep_their_payloads(bridge: Bridge) -> None:
    content = [{"contentType": "QuickReply", "quickReply": {"text": t, "payload": f"P-{t}"}} for t in ("Yes", "No")]

    genesys_id = await _agent(bridge, text="Shall I book it?", content=content)

    (sent,) = await eventually(lambda: _sent_count(bridge, 1))
    interactive = sent["body"]["interactive"]
    assert interactive["type"] == "button"
    assert [b["reply"]["title"] for b in interactive["action"]["buttons"]] == ["Yes", "No"]
    row = await _row(bridge, genesys_id)
    assert row.wamid == sent["wamid"]
    assert row.details is not None
    assert row.details.quick_replies == tuple(
        OfferedChoice(id=b["reply"]["id"], title=t, payload=f"P-{t}")
        for b, t in zip(interactive["action"]["buttons"], ("Yes", "No"), strict=True)
    )


async def test_an_image_attachment_is_fetched_from_genesys_kept_uploaded_to_meta_and_sent_by_id(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        await _customer_wrote(bridge)
        attachment = await _attachment(bridge, PNG, "image/png", "receipt.png")

        genesys_id = await _agent(bridge, text="Your receipt", content=[{"contentType": "Attachment",
                                                                          "attachment": attachment}])  # fmt: skip

        (sent,) = await eventually(lambda: _sent_count(bridge, 1))
        assert sent["body"]["type"] == "image"
        assert sent["body"]["image"]["caption"] == "Your receipt"
        media_id = sent["body"]["image"]["id"]
        token = bridge.demo["whatsapp"]["access_token"]
        uploaded = await bridge.meta.get(f"/v23.0/{media_id}", headers={"Authorization": f"Bearer {token}"})
        assert uploaded.json()["sha256"] == hashlib.sha256(PNG).hexdigest()
        assert uploaded.json()["mime_type"] == "image/png"
        row = await _row(bridge, genesys_id)
        assert (row.status, row.kind) == ("sent", "image")
        assert row.details is not None
        assert isinstance(row.details.media, tuple)
        (kept,) = row.details.media
        assert kept.object_key.startswith(f"tenant/{row.tenant_id}/outbound/{row.id}/")
        assert kept.bytes == len(PNG)
        assert (await bridge.runtime.store.get(kept.object_key)).data == PNG
        assert await _downloads(bridge) == [attachment["id"]]


async def test_refused_attachments_end_as_one_failed_receipt_each_with_the_whatsapp_reason(bridge: Bridge) -> None:
    gif = await _attachment(bridge, b"GIF89a" + b"\0" * 100, "image/gif", "party.gif")
    # Genesys does not always state the size: the limit holds while the bytes stream in.
    big_sticker = await _attachment(bridge, b"RIFF" + b"\0" * (600 * 1024), "image/webp", "big.webp")
    del big_sticker["contentSizeBytes"]

    gif_id = await _agent(bridge, content=[{"contentType": "Attachment", "attachment": gif}])
    big_id = await _agent(bridge, content=[{"contentType": "Attachment", "attachment": big_sticker}])
    after_id = await _agent(bridge, text="Sorry, here is the text instead")

    assert (await _receipt_for(bridge, gif_id))["reasons"][0]["code"] == "MediaTypeNotAllowed"
    assert (await _receipt_for(bridge, big_id))["reasons"][0]["code"] == "InvalidMediaContentLength"
    (sent,) = await eventually(lambda: _sent_count(bridge, 1))
    assert sent["body"]["text"]["body"] == "Sorry, here is the text instead"
    assert (await _row(bridge, after_id)).status == "sent"
    assert gif["id"] not in await _downloads(bridge)  # refused by its declared type, never fetched
    assert len(await _failed_receipts(bridge)) == 2


async def test_outside_the_24_hour_window_a_text_fails_as_message_expired_and_a_template_still_goes(
    bridge: Bridge,
) -> None:
    async with bridge.runtime.database.session() as session:
        await session.execute(
            update(Conversation).values(last_customer_message_at=datetime.now(UTC) - timedelta(hours=25))
        )
    await bridge.meta.post("/_sandbox/clock", json={"advance_seconds": 25 * 3600})

    text_id = await _agent(bridge, text="Are you still there?")
    template = {"id": "ns@hello_world", "language": "en_US", "body": {"parameters": []}}
    template_id = await _agent(bridge, content=[{"contentType": "Notification", "template": template}])

    receipt = await _receipt_for(bridge, text_id)
    assert receipt["reasons"][0]["code"] == "MessageExpired"
    assert "template" in receipt["reasons"][0]["message"]
    (sent,) = await eventually(lambda: _sent_count(bridge, 1))
    assert sent["body"]["template"] == {"name": "hello_world", "language": {"code": "en_US"}}
    assert (await _row(bridge, template_id)).status == "sent"
    await asyncio.sleep(0.3)  # the text must not follow late
    assert len(await _sent(bridge)) == 1


async def test_agent_typing_and_read_receipts_reach_whatsapp_on_the_customers_last_message(bridge: Bridge) -> None:
    last = await _customer_wrote(bridge)
    integration = bridge.demo["genesys"]["integration_id"]
    await bridge.genesys.post(f"/_sandbox/integrations/{integration}/agent/typing", json={"to": CUSTOMER})
    await _raw(bridge, _envelope(bridge, "a" * 32, type="Receipt", status="Read"))
    await _raw(bridge, _envelope(bridge, "a" * 32, type="Receipt", status="Read"))  # a Genesys retry

    async def calls() -> list[dict[str, Any]] | None:
        answer = await bridge.meta.get("/_sandbox/read_receipts")
        rows: list[dict[str, Any]] = answer.json()
        return rows if len(rows) >= 2 else None

    typing, read = await eventually(calls)
    assert (typing["message_id"], typing["typing_indicator"]) == (last, True)
    assert (read["message_id"], read["typing_indicator"]) == (last, False)
    await asyncio.sleep(0.3)
    assert len((await bridge.meta.get("/_sandbox/read_receipts")).json()) == 2


async def test_read_receipts_are_not_passed_on_when_the_tenant_turns_mark_read_off(bridge: Bridge) -> None:
    async with bridge.runtime.database.session() as session:
        await session.execute(update(Tenant).values(settings={"mark_read": False}))
    bridge.runtime.tenants.invalidate()

    await _raw(bridge, _envelope(bridge, "b" * 32, type="Receipt", status="Read"))
    await _agent(bridge, text="marker after the receipt")

    await eventually(lambda: _sent_count(bridge, 1))
    assert (await bridge.meta.get("/_sandbox/read_receipts")).json() == []


async def test_a_long_text_is_sent_in_parts_and_every_part_wamid_is_recorded(bridge: Bridge) -> None:
    words = [f"w{n:04d}" for n in range(1500)]

    genesys_id = await _agent(bridge, text=" ".join(words))

    sent = await eventually(lambda: _sent_count(bridge, 3))
    assert " ".join(s["body"]["text"]["body"] for s in sent).split() == words
    row = await _row(bridge, genesys_id)
    assert row.details is not None
    assert row.details.wamids == tuple(s["wamid"] for s in sent)
    assert row.wamid == sent[0]["wamid"]


@pytest.mark.parametrize(
    ("code", "reason"),
    [(131047, "MessageExpired"), (131026, "InvalidDestination"), (131053, "MediaTypeNotAllowed"),
     (131050, "RecipientOptedOut"), (132001, "GeneralError")],
)  # fmt: skip
async def test_a_permanent_meta_error_becomes_exactly_one_failed_receipt_with_metas_text(
    bridge: Bridge, code: int, reason: str
) -> None:
    number = bridge.demo["whatsapp"]["phone_number_id"]
    await bridge.meta.post("/_sandbox/faults", json={"phone_number_id": number, "code": code, "count": 1})

    genesys_id = await _agent(bridge, text="this one is refused")
    sent = await bridge.genesys.get("/_sandbox/sent", params={"to": CUSTOMER})
    (original,) = [s["body"] for s in sent.json() if s["id"] == genesys_id]
    await _raw(bridge, original)  # Genesys retries the same message: still one receipt, no send
    await _agent(bridge, text="and this one goes")

    receipt = await _receipt_for(bridge, genesys_id)
    assert receipt["reasons"][0]["code"] == reason
    assert f"({code})" in receipt["reasons"][0]["message"]
    (delivered,) = await eventually(lambda: _sent_count(bridge, 1))
    assert delivered["body"]["text"]["body"] == "and this one goes"
    await asyncio.sleep(0.3)
    assert len([r for r in await _failed_receipts(bridge) if r["id"] == genesys_id]) == 1


@pytest.mark.parametrize("code", [130429, 131056, 131000, 190])
async def test_transient_meta_errors_are_retried_until_the_message_goes(bridge: Bridge, code: int) -> None:
    number = bridge.demo["whatsapp"]["phone_number_id"]
    await bridge.meta.post("/_sandbox/faults", json={"phone_number_id": number, "code": code, "count": 2})

    first = await _agent(bridge, text="first")
    second = await _agent(bridge, text="second")

    sent = await eventually(lambda: _sent_count(bridge, 2))
    assert [s["body"]["text"]["body"] for s in sent] == ["first", "second"]
    assert [(await _row(bridge, g)).status for g in (first, second)] == ["sent", "sent"]
    assert await _failed_receipts(bridge) == []


async def test_an_unsupported_genesys_message_is_a_failed_receipt_not_a_silent_drop(bridge: Bridge) -> None:
    genesys_id = await _agent(bridge, text="look", content=[{"contentType": "Story", "story": {"type": "Mention"}}])

    receipt = await _receipt_for(bridge, genesys_id)

    assert receipt["reasons"][0]["code"] == "UnsupportedMessage"
    assert (await _row(bridge, genesys_id)).status == "failed"


async def test_a_send_meta_accepts_then_reports_failed_reaches_the_agent_as_one_failed_receipt(bridge: Bridge) -> None:
    number = bridge.demo["whatsapp"]["phone_number_id"]
    await bridge.meta.post(
        "/_sandbox/faults", json={"phone_number_id": number, "code": 131026, "count": 1, "mode": "status"}
    )

    genesys_id = await _agent(bridge, text="accepted, then undeliverable")

    receipt = await _receipt_for(bridge, genesys_id)
    assert receipt["reasons"][0]["code"] == "InvalidDestination"
    (sent,) = await _sent(bridge)
    assert (await _row(bridge, genesys_id)).wamid == sent["wamid"]


async def test_when_metas_clock_says_the_window_closed_an_accepted_text_comes_back_as_message_expired(
    bridge: Bridge,
) -> None:
    # Our state still sees a recent customer message; Meta's clock has moved on a day.
    await bridge.meta.post("/_sandbox/clock", json={"advance_seconds": 24 * 3600 + 60})

    text_id = await _agent(bridge, text="accepted, then refused by Meta")
    template = {"id": "ns@hello_world", "language": "en_US", "body": {"parameters": []}}
    template_id = await _agent(bridge, content=[{"contentType": "Notification", "template": template}])

    receipt = await _receipt_for(bridge, text_id)
    assert receipt["reasons"][0]["code"] == "MessageExpired"
    assert [s["body"]["type"] for s in await eventually(lambda: _sent_count(bridge, 2))] == ["text", "template"]
    await asyncio.sleep(0.3)
    assert [r["id"] for r in await _failed_receipts(bridge)] == [text_id]
    assert (await _row(bridge, template_id)).status in ("sent", "delivered", "read")


async def test_an_attachment_host_that_keeps_failing_ends_as_a_failed_receipt_at_the_retry_horizon(
    tmp_path: Path,
) -> None:
    # Transient failures are retried until the horizon (hours by default): 2.5 s here, more than max_attempts tries.
    async with running_bridge(embedded_settings(tmp_path, retry_horizon_seconds=2.5)) as bridge:
        await _customer_wrote(bridge)
        broken = await bridge.genesys.post(
            "/_sandbox/attachments",
            json={"data_base64": base64.b64encode(PNG).decode(), "mime_type": "image/png", "answer_status": 503},
        )

        genesys_id = await _agent(bridge, content=[{"contentType": "Attachment", "attachment": broken.json()}])

        receipt = await _receipt_for(bridge, genesys_id)
        assert receipt["reasons"][0]["code"] == "ServerError"
        assert "after retries" in receipt["reasons"][0]["message"]
        assert len(await _downloads(bridge)) > bridge.runtime.settings.max_attempts  # not cut at max_attempts
        assert (await _row(bridge, genesys_id)).status == "failed"
        assert await _sent(bridge) == []


async def test_one_hop_a_new_agent_message_is_sent_without_reading_back_a_retried_one_reads(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transformer created the row a moment before: whatsapp-api neither reads it back nor looks for earlier
    attempts of its parts. A retry (the row tracked already) and a message with an attachment do both."""
    reads: list[str | None] = []
    real_send_state = whatsapp_api_worker.send_state

    async def counted(database: Any, *, tenant_id: str, message_id: str) -> SendState | None:
        state = await real_send_state(database, tenant_id=tenant_id, message_id=message_id)
        reads.append(state.status if state is not None else None)
        return state

    monkeypatch.setattr(whatsapp_api_worker, "send_state", counted)
    looked: list[str] = []
    real_get = bridge.runtime.cache.get

    async def get(key: str) -> bytes | None:
        if ":wa-part" in key or ":wa-attempt" in key:
            looked.append(key)
        return await real_get(key)

    monkeypatch.setattr(bridge.runtime.cache, "get", get)
    assert bridge.runtime.settings.direct_send

    quick = [{"contentType": "QuickReply", "quickReply": {"text": t, "payload": f"P-{t}"}} for t in ("Yes", "No")]
    first = await _agent(bridge, text="one", content=quick)
    await eventually(lambda: _sent_count(bridge, 1))
    assert (await _row(bridge, first)).status == "sent"
    assert (reads, looked) == ([], [])
    # The quick replies offered (the details the sender was handed, not read) are kept with the row.
    row = await _row(bridge, first)
    assert row.details is not None
    assert [choice.payload for choice in row.details.quick_replies or ()] == ["P-Yes", "P-No"]

    # Meta refuses the next send once (transient): the transformer's retry finds the row tracked and reads it.
    number = bridge.demo["whatsapp"]["phone_number_id"]
    await bridge.meta.post("/_sandbox/faults", json={"phone_number_id": number, "code": 130429, "count": 1})
    second = await _agent(bridge, text="two")
    await eventually(lambda: _sent_count(bridge, 2))
    assert (await _row(bridge, second)).status == "sent"
    assert reads == ["received"]
    assert looked  # the retry looked for an earlier attempt of its part before sending it

    # After an attachment's download the row is read back before the send, as if queued.
    looked.clear()
    attachment = await _attachment(bridge, PNG, "image/png", "chart.png")
    await _agent(bridge, text="three", content=[{"contentType": "Attachment", "attachment": attachment}])
    await eventually(lambda: _sent_count(bridge, 3))
    assert reads == ["received", "received"]
    assert looked
    assert [s["body"].get("type") for s in await _sent(bridge)] == ["interactive", "text", "image"]
