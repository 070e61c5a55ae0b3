"""The operator API behind the admin dashboard: overview, timeline, dead letters, token, webhooks, audit, people.

Runs the whole bridge with the emulators (embedded backends); Meta and Genesys behave as the contracts say,
faults are injected through the emulators' control routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import Bridge, eventually, running_bridge, tenant_spec
from tests.support.moto import free_port
from xypr.auth.principal import Role
from xypr.backends.storage import create_object_store

CUSTOMER = "16505551234"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running_bridge(embedded_settings(tmp_path, max_attempts=2)) as running:
        yield running


@pytest.fixture
async def admin(bridge: Bridge) -> dict[str, str]:
    return await login_as(bridge, Role.XYPR_ADMIN)


async def _overview(bridge: Bridge, headers: dict[str, str]) -> dict[str, Any]:
    answer = await bridge.client.get("/ops/overview", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _dead_letters(bridge: Bridge, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    answer = await bridge.client.get("/dlq", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def _demo_tenant_id(bridge: Bridge, admin: dict[str, str]) -> str:
    answer = await bridge.client.get(
        "/tenants", params={"q": bridge.demo["whatsapp"]["phone_number_id"]}, headers=admin
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["items"][0]["id"])


async def test_overview_shows_every_dependency_this_process_and_each_queue_green(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    overview = await eventually(lambda: _overview(bridge, admin))

    assert {d["name"]: d["state"] for d in overview["dependencies"]} == {
        "database": "green", "broker": "green", "cache": "green", "storage": "green",
    }  # fmt: skip
    assert [q["name"] for q in overview["queues"]] == ["inbound.whatsapp", "send.genesys", "outbound.genesys",
                                                       "send.whatsapp"]  # fmt: skip
    assert all(q["depth"] == 0 and q["oldestAgeSeconds"] is not None and q["parked"] == 0 for q in overview["queues"])
    gateway = next(p for p in overview["processes"] if p["kind"] == "gateway")
    assert gateway["version"]
    assert gateway["pid"] > 0
    assert gateway["uptimeSeconds"] >= 0
    assert overview["state"] == "green"
    assert overview["generatedAt"].endswith("Z")
    assert overview["thresholds"]["queue_depth"] == [100, 1000]


async def test_a_storage_outage_turns_its_tile_red(bridge: Bridge, admin: dict[str, str]) -> None:
    closed_port = free_port()  # nothing listens there: an S3 server that is down
    broken = bridge.runtime.settings.model_copy(
        update={"s3_endpoint": f"http://127.0.0.1:{closed_port}", "s3_bucket": "gone",
                "s3_access_key": SecretStr("x"), "s3_secret_key": SecretStr("x")}
    )  # fmt: skip
    down = create_object_store(broken)
    assert await down.ping() is False  # (also loads the S3 client once, which takes a while on a busy machine)
    working, bridge.runtime.store = bridge.runtime.store, down
    try:
        overview = await _overview(bridge, admin)
    finally:
        await bridge.runtime.store.close()
        bridge.runtime.store = working

    states = {d["name"]: d["state"] for d in overview["dependencies"]}
    assert states == {"database": "green", "broker": "green", "cache": "green", "storage": "red"}
    assert overview["state"] == "red"


async def test_inbound_messages_raise_the_inbound_count_of_the_last_hour(bridge: Bridge, admin: dict[str, str]) -> None:
    before = (await _overview(bridge, admin))["inboundLastHour"]

    for number in range(3):
        await bridge.customer_says(CUSTOMER, f"message {number}")

    async def counted() -> int | None:
        now = (await _overview(bridge, admin))["inboundLastHour"]
        return now if now == before + 3 else None

    await eventually(counted)
    minutes = (await _overview(bridge, admin))["messagesPerMinute"]
    assert len(minutes) == 60
    assert sum(m["inbound"] for m in minutes) == before + 3


async def test_tenant_people_get_their_own_overview_and_agents_none(bridge: Bridge, admin: dict[str, str]) -> None:
    tenant_admin = await login_as(bridge, Role.TENANT_ADMIN)
    agent = await login_as(bridge, Role.AGENT)

    scoped = await _overview(bridge, tenant_admin)

    assert scoped["tenantId"] == await _demo_tenant_id(bridge, admin)
    assert scoped["queues"] == []
    assert scoped["processes"] == []
    assert (await bridge.client.get("/ops/overview", headers=agent)).status_code == 403


async def test_a_forced_genesys_400_is_dead_lettered_inspected_replayed_and_another_discarded_with_a_reason(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    integration = bridge.demo["genesys"]["integration_id"]
    tenant_id = await _demo_tenant_id(bridge, admin)
    await bridge.genesys.post("/_sandbox/faults", json={"status": 400, "count": 1, "integration_id": integration})
    await bridge.customer_says(CUSTOMER, "first, refused by Genesys")
    [first] = await eventually(lambda: _dead_letters(bridge, admin))
    await bridge.genesys.post("/_sandbox/faults", json={"status": 400, "count": 1, "integration_id": integration})
    await bridge.customer_says("16505559999", "second, refused too")
    letters = await eventually(lambda: _two(bridge, admin))
    second = next(letter for letter in letters if letter["id"] != first["id"])

    detail = (await bridge.client.get(f"/dlq/{first['id']}", headers=admin)).json()
    assert detail["tenantId"] == tenant_id
    assert detail["queue"] == "send.genesys"
    assert "400" in detail["error"]
    assert detail["attempts"] == 1
    assert detail["payload"]["body"]["text"] == "first, refused by Genesys"
    assert bridge.demo["genesys"]["client_secret"] not in str(detail)

    replayed = await bridge.client.post(f"/dlq/{first['id']}/replay", headers=admin)
    assert replayed.status_code == 200, replayed.text

    async def arrived() -> bool:
        return any(r["body"].get("text") == "first, refused by Genesys" for r in await bridge.genesys_received())

    await eventually(arrived)
    assert [letter["id"] for letter in await _dead_letters(bridge, admin)] == [second["id"]]

    refused = await bridge.client.post(f"/dlq/{second['id']}/discard", json={"reason": " "}, headers=admin)
    assert refused.status_code == 400
    discarded = await bridge.client.post(
        f"/dlq/{second['id']}/discard", json={"reason": "customer asked us to drop it"}, headers=admin
    )
    assert discarded.status_code == 200, discarded.text
    assert await _dead_letters(bridge, admin) == []

    audit = (await bridge.client.get("/audit", headers=admin, params={"tenantId": tenant_id})).json()["items"]
    actions = {entry["action"]: entry for entry in audit}
    assert actions["dead_letter.replay"]["target"] == first["id"]
    assert actions["dead_letter.discard"]["details"]["reason"] == "customer asked us to drop it"


async def test_replaying_a_filter_keeps_each_conversations_order_and_the_timelines_say_retried(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    integration = bridge.demo["genesys"]["integration_id"]
    tenant_id = await _demo_tenant_id(bridge, admin)
    await bridge.genesys.post("/_sandbox/faults", json={"status": 400, "count": 3, "integration_id": integration})
    said = [await bridge.customer_says(CUSTOMER, f"number {n}") for n in range(3)]
    await eventually(lambda: _count(bridge, admin, 3))

    answer = await bridge.client.post(
        "/dlq/replay", json={"tenantId": tenant_id, "queue": "send.genesys"}, headers=admin
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"replayed": 3}

    async def arrived() -> list[str] | None:
        texts = [r["body"].get("text") for r in await bridge.genesys_received()]
        mine = [text for text in texts if str(text).startswith("number ")]
        return mine if len(mine) == 3 else None

    assert await eventually(arrived) == ["number 0", "number 1", "number 2"]
    for each in said:
        found = (await bridge.client.get("/messages/timeline", params={"q": each["wamid"]}, headers=admin)).json()
        steps = [event["step"] for event in found["messages"][0]["timeline"]]
        assert steps[:2] == ["received", "transformed"]
        assert steps.index("dead_lettered") < steps.index("retried") < steps.index("sent"), steps
    audit = (await bridge.client.get("/audit", headers=admin, params={"action": "dead_letter.replay"})).json()
    assert audit["total"] == 3


async def _count(bridge: Bridge, admin: dict[str, str], wanted: int) -> bool:
    return len(await _dead_letters(bridge, admin)) == wanted


async def _two(bridge: Bridge, admin: dict[str, str]) -> list[dict[str, Any]] | None:
    letters = await _dead_letters(bridge, admin)
    return letters if len(letters) == 2 else None


async def test_dead_letters_are_scoped_replay_is_for_tenant_admins(bridge: Bridge, admin: dict[str, str]) -> None:
    other = tenant_spec()
    await bridge.add_tenant(other)
    await bridge.genesys.post("/_sandbox/faults", json={"status": 400, "count": 1})
    await bridge.customer_says(CUSTOMER, "to the demo tenant")
    [letter] = await eventually(lambda: _dead_letters(bridge, admin))
    demo_supervisor = await login_as(bridge, Role.SUPERVISOR)
    other_admin = await login_as(bridge, Role.TENANT_ADMIN, other)

    assert [each["id"] for each in await _dead_letters(bridge, demo_supervisor)] == [letter["id"]]
    assert (await bridge.client.post(f"/dlq/{letter['id']}/replay", headers=demo_supervisor)).status_code == 403
    assert await _dead_letters(bridge, other_admin) == []
    assert (await bridge.client.get(f"/dlq/{letter['id']}", headers=other_admin)).status_code == 404
    assert (await bridge.client.post(f"/dlq/{letter['id']}/replay", headers=other_admin)).status_code == 404


async def test_the_timeline_of_an_agent_message_ends_in_delivered(bridge: Bridge, admin: dict[str, str]) -> None:
    await bridge.meta.post("/_sandbox/statuses/sequence", json={"sequence": ["sent", "delivered"]})
    await bridge.customer_says(CUSTOMER, "hello")
    await eventually(lambda: bridge.genesys_received())
    await bridge.agent_says(CUSTOMER, "hello, how can I help?")
    [sent] = await eventually(lambda: bridge.whatsapp_sent(to=CUSTOMER))
    wamid = sent["wamid"]

    async def delivered() -> dict[str, Any] | None:
        found = (await bridge.client.get("/messages/timeline", params={"q": wamid}, headers=admin)).json()
        steps = [event["step"] for event in (found["messages"][0]["timeline"] or [])] if found["found"] else []
        return found if steps and steps[-1] == "delivered" else None

    found = await eventually(delivered)
    message = found["messages"][0]
    assert message["direction"] == "outbound"
    assert message["waId"] == CUSTOMER
    assert [e["step"] for e in message["timeline"]] == ["received", "transformed", "sent", "delivered"]


async def test_a_conversation_lists_its_messages_and_an_unknown_id_finds_none(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    await bridge.customer_says(CUSTOMER, "one")
    await bridge.customer_says(CUSTOMER, "two")

    async def both() -> dict[str, Any] | None:
        found = (await bridge.client.get("/messages/timeline", params={"q": CUSTOMER}, headers=admin)).json()
        return found if found["found"] == 2 else None

    found = await eventually(both)
    assert all(m["timeline"] is None for m in found["messages"])
    unknown = await bridge.client.get("/messages/timeline", params={"q": "wamid.unknown"}, headers=admin)
    assert unknown.json() == {"query": "wamid.unknown", "found": 0, "messages": []}


async def test_an_operator_sees_the_genesys_token_and_a_forced_refresh_changes_its_expiry(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    tenant_id = await _demo_tenant_id(bridge, admin)
    await bridge.genesys.post("/_sandbox/tokens/ttl", json={"seconds": 3600})
    first = await bridge.client.post(f"/tenants/{tenant_id}/genesys-token/refresh", headers=admin)
    assert first.status_code == 200, first.text
    await bridge.genesys.post("/_sandbox/tokens/ttl", json={"seconds": 7200})

    second = (await bridge.client.post(f"/tenants/{tenant_id}/genesys-token/refresh", headers=admin)).json()
    status = (await bridge.client.get(f"/tenants/{tenant_id}/genesys-token", headers=admin)).json()

    assert status == second
    assert status["cached"]
    assert status["healthy"]
    assert status["lastError"] is None
    assert status["expiresAt"] > first.json()["expiresAt"]
    assert "access_token" not in str(status).lower()


async def test_a_refused_token_refresh_is_a_409_and_its_error_is_kept(bridge: Bridge, admin: dict[str, str]) -> None:
    spec = tenant_spec()
    tenant_id = await bridge.add_tenant(spec)
    await bridge.genesys.post(
        "/_sandbox/integrations",
        json={"integration_id": spec["genesys"]["integration_id"], "name": "x",
              "client_id": spec["genesys"]["client_id"], "client_secret": "another-secret",
              "webhook_url": f"{bridge.url}/webhook/genesys",
              "webhook_secret": spec["genesys"]["webhook_secret"]},
    )  # fmt: skip

    refused = await bridge.client.post(f"/tenants/{tenant_id}/genesys-token/refresh", headers=admin)
    status = (await bridge.client.get(f"/tenants/{tenant_id}/genesys-token", headers=admin)).json()

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "genesys_token_refresh_failed"
    assert not status["healthy"]
    assert "refused" in status["lastError"]
    assert status["lastErrorAt"].endswith("Z")


async def test_another_tenants_token_and_webhooks_answer_404(bridge: Bridge, admin: dict[str, str]) -> None:
    other = tenant_spec()
    other_id = await bridge.add_tenant(other)
    demo_admin = await login_as(bridge, Role.TENANT_ADMIN)

    for path in ("genesys-token", "webhooks", "whatsapp-number"):
        assert (await bridge.client.get(f"/tenants/{other_id}/{path}", headers=demo_admin)).status_code == 404
    refresh = await bridge.client.post(f"/tenants/{other_id}/genesys-token/refresh", headers=demo_admin)
    assert refresh.status_code == 404


async def test_the_webhook_helper_masks_the_verify_token_and_the_handshake_passes(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    tenant_id = await _demo_tenant_id(bridge, admin)
    await bridge.customer_says(CUSTOMER, "hi")

    helper = (await bridge.client.get(f"/tenants/{tenant_id}/webhooks", headers=admin)).json()
    verified = (await bridge.client.post(f"/tenants/{tenant_id}/webhooks/verify", headers=admin)).json()

    assert helper["whatsappUrl"] == f"{bridge.url}/webhook/whatsapp"
    assert helper["genesysUrl"] == f"{bridge.url}/webhook/genesys"
    assert bridge.demo["whatsapp"]["verify_token"] not in str(helper)
    assert helper["verifyTokenMasked"].endswith(f"({len(bridge.demo['whatsapp']['verify_token'])} characters)")
    assert helper["lastWhatsappAt"] is not None
    assert helper["lastGenesysAt"] is None
    assert verified["ok"] is True
    assert verified["statusCode"] == 200


async def test_the_whatsapp_number_reports_token_validity_and_throughput(bridge: Bridge, admin: dict[str, str]) -> None:
    tenant_id = await _demo_tenant_id(bridge, admin)

    number = (await bridge.client.get(f"/tenants/{tenant_id}/whatsapp-number", headers=admin)).json()

    assert number["tokenValid"] is True
    assert number["throughput"] == "STANDARD"
    assert number["qualityRating"] == "GREEN"


async def test_tenants_are_found_by_name_phone_number_id_and_genesys_org(bridge: Bridge, admin: dict[str, str]) -> None:
    spec = tenant_spec("needle")
    spec["genesys"]["org_id"] = "org-needle"
    tenant_id = await bridge.add_tenant(spec)

    for q in ("NEEDLE", spec["whatsapp"]["phone_number_id"], "org-needle"):
        page = (await bridge.client.get("/tenants", params={"q": q}, headers=admin)).json()
        assert [t["id"] for t in page["items"]] == [tenant_id], q
        assert page["total"] == 1, q
    nothing = (await bridge.client.get("/tenants", params={"q": "100%_"}, headers=admin)).json()
    assert nothing["total"] == 0


async def test_suspend_and_reactivate_are_audited_and_tenant_admins_see_only_their_entries(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    other_id = await bridge.add_tenant(tenant_spec())
    assert (await bridge.client.post(f"/tenants/{other_id}/suspend", headers=admin)).status_code == 200
    assert (await bridge.client.post(f"/tenants/{other_id}/reactivate", headers=admin)).status_code == 200
    demo_admin = await login_as(bridge, Role.TENANT_ADMIN)

    everything = (await bridge.client.get("/audit", headers=admin)).json()
    mine = (await bridge.client.get("/audit", headers=demo_admin, params={"tenantId": other_id})).json()

    actions = [(e["action"], e["tenantId"]) for e in everything["items"]]
    assert ("tenant.suspend", other_id) in actions
    assert ("tenant.reactivate", other_id) in actions
    assert everything["items"][0]["at"].endswith("Z")
    assert mine["total"] == 0


async def test_an_administrator_creates_another_and_disabling_them_ends_their_session(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    created = await bridge.client.post(
        "/users", json={"email": "ops2@xypr.test", "password": "a long enough password", "name": "Ops Two"},
        headers=admin,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    tokens = (
        await bridge.client.post(
            "/auth/token", data={"grant_type": "password", "username": "ops2@xypr.test",
                                 "password": "a long enough password"}
        )
    ).json()  # fmt: skip
    theirs = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await bridge.client.get("/auth/info", headers=theirs)).status_code == 200
    sessions = (await bridge.client.get("/users/sessions", headers=admin)).json()["items"]
    assert "ops2@xypr.test" in [s["email"] for s in sessions]

    disabled = await bridge.client.post(f"/users/{created.json()['id']}/disable", headers=admin)

    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    assert (await bridge.client.get("/auth/info", headers=theirs)).status_code == 401
    assert (await bridge.client.get("/users", headers=await login_as(bridge, Role.TENANT_ADMIN))).status_code == 403
