"""The state API over HTTP: mappings, conversations, context, message tracking, media lookup and statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import Bridge, eventually, running_bridge
from xypr.auth.principal import Role
from xypr.config import Settings
from xypr.state.models import Media

CUSTOMER = "16505551234"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as running:
        yield running


@pytest.fixture
async def admin(bridge: Bridge) -> dict[str, str]:
    return await login_as(bridge, Role.TENANT_ADMIN)


async def _track(bridge: Bridge, headers: dict[str, str], **message: str) -> dict[str, object]:
    body = {"direction": "inbound", "waId": CUSTOMER, **message}
    answer = await bridge.client.post("/state/message", json=body, headers=headers)
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, object] = answer.json()
    return result


async def test_the_pipeline_state_is_readable_through_the_api(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings) as bridge:
        supervisor = await login_as(bridge, Role.SUPERVISOR)
        sent = await bridge.customer_says(CUSTOMER, "Hello from WhatsApp")
        (received,) = await eventually(bridge.genesys_received)

        async def tracked() -> dict[str, object] | None:
            page = await bridge.client.get("/state/messages", params={"waId": CUSTOMER}, headers=supervisor)
            items = page.json()["items"]
            return page.json() if items and items[0]["status"] == "sent" else None

        page = await eventually(tracked)
        mapping = await bridge.client.get(f"/state/mapping/{CUSTOMER}", headers=supervisor)
        by_genesys = await bridge.client.get(f"/state/conversation/{received['conversationId']}", headers=supervisor)
        stats = await bridge.client.get("/state/stats", headers=supervisor)

    assert page["total"] == 1
    (message,) = page["items"]  # type: ignore[index]
    assert (message["direction"], message["wamid"]) == ("inbound", sent["wamid"])
    assert message["text"] == "Hello from WhatsApp"
    assert message["genesysMessageId"] == received["id"]
    assert mapping.status_code == 200
    assert mapping.json()["genesysConversationId"] == received["conversationId"]
    assert mapping.json()["customerName"] == "Sheena Nelson"
    assert mapping.json()["windowOpen"] is True
    assert by_genesys.json()["conversationId"] == mapping.json()["conversationId"]
    assert by_genesys.json()["messageCount"] == 1
    assert stats.json()["scope"] == "tenant"
    assert stats.json()["conversations"] == 1
    assert stats.json()["messages"]["inbound"] == {"sent": 1}
    assert stats.json()["messagesLastDay"] == {"inbound": 1, "outbound": 0}


async def test_a_mapping_is_created_then_updated_and_found_by_wa_id_or_bsuid(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    created = await bridge.client.post(
        "/state/mapping", json={"waId": CUSTOMER, "customerName": "Sheena"}, headers=admin
    )
    updated = await bridge.client.post(
        "/state/mapping",
        json={"waId": CUSTOMER, "bsuid": "US.13491208655302741918", "genesysConversationId": "gc-1"},
        headers=admin,
    )
    by_wa_id = await bridge.client.get(f"/state/mapping/{CUSTOMER}", headers=admin)
    by_bsuid = await bridge.client.get("/state/mapping/US.13491208655302741918", headers=admin)
    unknown = await bridge.client.get("/state/mapping/19995550000", headers=admin)

    assert created.status_code == 201
    assert created.json()["windowOpen"] is False  # the customer has not written yet
    assert updated.status_code == 200
    assert updated.json()["conversationId"] == created.json()["conversationId"]
    assert updated.json()["customerName"] == "Sheena"  # fields not given are kept
    assert by_wa_id.json() == by_bsuid.json() == updated.json()
    assert by_wa_id.json()["genesysConversationId"] == "gc-1"
    assert unknown.status_code == 404


async def test_context_is_read_and_replaced_by_our_id_or_the_genesys_id_keeping_xypr_facts(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    agent = await login_as(bridge, Role.AGENT)
    mapping = await bridge.client.post(
        "/state/mapping", json={"waId": CUSTOMER, "genesysConversationId": "gc-7"}, headers=admin
    )
    conversation_id = mapping.json()["conversationId"]

    written = await bridge.client.put(
        "/state/context/gc-7", json={"context": {"language": "es", "customer_id": "forged"}}, headers=agent
    )
    read = await bridge.client.get(f"/state/context/{conversation_id}", headers=agent)
    missing = await bridge.client.get("/state/context/no-such-conversation", headers=agent)
    not_an_object = await bridge.client.put("/state/context/gc-7", json={"context": [1, 2]}, headers=agent)

    assert written.status_code == 200, written.text
    assert read.json() == {
        "conversationId": conversation_id,
        "context": {
            "language": "es",
            "conversation_id": conversation_id,
            "customer_id": CUSTOMER,
            "genesys_conversation_id": "gc-7",
        },
    }
    assert missing.status_code == 404
    assert not_an_object.status_code == 400


async def test_message_tracking_is_idempotent_and_a_status_only_moves_forward(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    first = await bridge.client.post(
        "/state/message",
        json={"direction": "inbound", "waId": CUSTOMER, "wamid": "wamid.A", "text": "hi"},
        headers=admin,
    )
    statuses = [
        (await _track(bridge, admin, wamid="wamid.A", status=status))["status"]
        for status in ("delivered", "sent", "read", "failed")
    ]
    # The pipeline's own rule: a failure after delivery changes nothing; before it, failed is final.
    failing = [
        (await _track(bridge, admin, wamid="wamid.F", status=status))["status"]
        for status in ("sent", "failed", "delivered", "read")
    ]
    outbound = await bridge.client.post(
        "/state/message",
        json={"direction": "outbound", "waId": CUSTOMER, "genesysMessageId": "g-1", "status": "sent"},
        headers=admin,
    )
    no_wamid = await bridge.client.post(
        "/state/message", json={"direction": "inbound", "waId": CUSTOMER}, headers=admin
    )
    no_genesys_id = await bridge.client.post(
        "/state/message", json={"direction": "outbound", "waId": CUSTOMER}, headers=admin
    )
    bad_status = await bridge.client.post(
        "/state/message", json={"direction": "inbound", "waId": CUSTOMER, "wamid": "w", "status": "lost"}, headers=admin
    )

    assert first.status_code == 201
    assert first.json()["status"] == "received"
    assert statuses == ["delivered", "delivered", "read", "read"]
    assert failing == ["sent", "failed", "failed", "failed"]
    assert outbound.status_code == 201
    assert outbound.json()["conversationId"] == first.json()["conversationId"]
    assert (no_wamid.status_code, no_wamid.json()["error"]["field"]) == (400, "wamid")
    assert (no_genesys_id.status_code, no_genesys_id.json()["error"]["field"]) == (400, "genesysMessageId")
    assert bad_status.status_code == 400


async def test_messages_are_listed_newest_first_filtered_and_paged(bridge: Bridge, admin: dict[str, str]) -> None:
    for n in range(5):
        await _track(bridge, admin, wamid=f"wamid.{n}", status="failed" if n % 2 else "sent")
    await _track(bridge, admin, waId="19995550000", wamid="wamid.other")

    page = (await bridge.client.get("/state/messages", params={"limit": 2}, headers=admin)).json()
    rest = (await bridge.client.get("/state/messages", params={"limit": 10, "offset": 2}, headers=admin)).json()
    failed = (await bridge.client.get("/state/messages", params={"status": "failed"}, headers=admin)).json()
    customer = (await bridge.client.get("/state/messages", params={"waId": CUSTOMER}, headers=admin)).json()
    nobody = (await bridge.client.get("/state/messages", params={"conversationId": "none"}, headers=admin)).json()
    bad = await bridge.client.get("/state/messages", params={"direction": "sideways"}, headers=admin)

    assert (page["total"], len(page["items"])) == (6, 2)
    assert [m["wamid"] for m in page["items"] + rest["items"]] == [
        "wamid.other", "wamid.4", "wamid.3", "wamid.2", "wamid.1", "wamid.0",
    ]  # fmt: skip
    assert sorted(m["wamid"] for m in failed["items"]) == ["wamid.1", "wamid.3"]
    assert customer["total"] == 5
    assert nobody == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert bad.status_code == 400


async def test_a_media_id_leads_to_a_short_lived_url_of_our_copy(bridge: Bridge, admin: dict[str, str]) -> None:
    tenant = await bridge.runtime.tenants.by_phone_number_id(bridge.demo["whatsapp"]["phone_number_id"])
    assert tenant is not None
    key = f"tenant/{tenant.id}/media/photo.jpg"
    await bridge.runtime.store.put(key, b"\xff\xd8jpeg bytes", content_type="image/jpeg")
    async with bridge.runtime.database.session() as session:
        session.add(
            Media(tenant_id=tenant.id, wamid="wamid.M", media_id="1013859600285441", object_key=key,
                  mime_type="image/jpeg", sha256="ab" * 32, size=12, filename="photo.jpg")
        )  # fmt: skip

    found = await bridge.client.get("/state/media/1013859600285441", headers=admin)
    unknown = await bridge.client.get("/state/media/999", headers=admin)

    assert found.status_code == 200, found.text
    media = found.json()
    assert (media["wamid"], media["mimeType"], media["size"]) == ("wamid.M", "image/jpeg", 12)
    assert media["urlExpiresIn"] == 900
    fetched = await bridge.client.get(media["url"])
    assert fetched.content == b"\xff\xd8jpeg bytes"
    assert unknown.status_code == 404


async def test_a_xypr_admin_names_the_tenant_and_sees_the_platform_without_one(bridge: Bridge) -> None:
    platform_admin = await login_as(bridge, Role.XYPR_ADMIN)
    tenant = await bridge.runtime.tenants.by_phone_number_id(bridge.demo["whatsapp"]["phone_number_id"])
    assert tenant is not None

    unnamed = await bridge.client.get(f"/state/mapping/{CUSTOMER}", headers=platform_admin)
    unknown = await bridge.client.get("/state/stats", params={"tenantId": "no-such-tenant"}, headers=platform_admin)
    written = await bridge.client.post(
        "/state/mapping", params={"tenantId": tenant.id}, json={"waId": CUSTOMER}, headers=platform_admin
    )
    platform = await bridge.client.get("/state/stats", headers=platform_admin)
    one_tenant = await bridge.client.get("/state/stats", params={"tenantId": tenant.id}, headers=platform_admin)

    assert (unnamed.status_code, unnamed.json()["error"]["field"]) == (403, "tenantId")
    assert unknown.status_code == 404
    assert written.status_code == 201
    assert platform.json()["scope"] == "platform"
    assert platform.json()["tenantId"] is None
    assert platform.json()["tenants"] == {"active": 1}
    assert one_tenant.json()["scope"] == "tenant"
    assert one_tenant.json()["conversations"] == 1
