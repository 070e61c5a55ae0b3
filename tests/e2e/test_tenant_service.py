"""The tenant service over HTTP: onboarding checks field by field, one-step setup, updates, paging, deletion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import Bridge, eventually, running_bridge, tenant_spec
from xypr.auth.principal import Role
from xypr.state.models import Conversation, Media
from xypr.tenants.models import Tenant
from xypr.tenants.service import TENANT_CHANGES

CHECKS = {"genesys.credentials", "genesys.integrationId", "whatsapp.accessToken"}


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    settings = embedded_settings(tmp_path, onboarding_poll_interval_seconds=0.05, onboarding_poll_timeout_seconds=5)
    async with running_bridge(settings, workers=False) as running:
        yield running


@pytest.fixture
async def admin(bridge: Bridge) -> dict[str, str]:
    return await login_as(bridge, Role.XYPR_ADMIN)


def _secrets(spec: dict[str, Any]) -> list[str]:
    return [
        spec["genesys"]["client_secret"],
        spec["genesys"]["webhook_secret"],
        spec["whatsapp"]["access_token"],
        spec["whatsapp"]["app_secret"],
        spec["whatsapp"]["verify_token"],
    ]


async def _registered(bridge: Bridge, spec: dict[str, Any]) -> dict[str, Any]:
    """The tenant's number and integration exist at Meta and Genesys (what a real customer has)."""
    from xypr.sandbox.demo import register_with_emulators

    await register_with_emulators(bridge.meta, bridge.genesys, spec, public_url=bridge.url)
    return spec


async def test_admin_onboards_a_tenant_and_every_check_passes_field_by_field(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    spec = await _registered(bridge, tenant_spec())

    answer = await bridge.client.post("/tenants", json=spec, headers=admin)

    assert answer.status_code == 201, answer.text
    tenant = answer.json()
    assert tenant["status"] == "active"
    assert tenant["whatsapp"]["phoneNumberId"] == spec["whatsapp"]["phone_number_id"]
    assert set(tenant["checks"]) == CHECKS
    assert all(check["ok"] for check in tenant["checks"].values()), tenant["checks"]
    assert tenant["checkedAt"].endswith("Z")
    for secret in _secrets(spec):
        assert secret not in answer.text
    # Routed at once by the webhooks: the tenant directory knows it.
    routed = await bridge.runtime.tenants.by_phone_number_id(spec["whatsapp"]["phone_number_id"])
    assert routed is not None
    assert routed.id == tenant["id"]


async def test_wrong_credentials_are_reported_field_by_field_and_the_tenant_is_still_created(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    spec = await _registered(bridge, tenant_spec())
    spec["genesys"]["client_secret"] = "not-the-secret"
    spec["whatsapp"]["access_token"] = "EAAG-revoked"

    answer = await bridge.client.post("/tenants", json=spec, headers=admin)

    assert answer.status_code == 201, answer.text
    checks = answer.json()["checks"]
    assert checks["genesys.credentials"]["ok"] is False
    assert "refused the client credentials" in checks["genesys.credentials"]["message"]
    assert checks["genesys.integrationId"] == {
        "ok": False,
        "message": "not checked: no Genesys token (see genesys.credentials)",
    }
    assert checks["whatsapp.accessToken"]["ok"] is False
    assert "190" in checks["whatsapp.accessToken"]["message"]
    assert "not-the-secret" not in answer.text
    assert "EAAG-revoked" not in answer.text


async def test_an_unknown_integration_and_a_foreign_webhook_url_fail_their_check(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    spec = await _registered(bridge, tenant_spec())
    elsewhere = tenant_spec()
    elsewhere["genesys"]["client_id"] = spec["genesys"]["client_id"]
    elsewhere["genesys"]["client_secret"] = spec["genesys"]["client_secret"]
    await bridge.genesys.post(
        "/_sandbox/integrations",
        json={"integration_id": elsewhere["genesys"]["integration_id"], "client_id": spec["genesys"]["client_id"],
              "client_secret": spec["genesys"]["client_secret"], "webhook_url": "https://other.example/hook",
              "webhook_secret": "w" * 20},
    )  # fmt: skip
    unknown = {**spec, "genesys": {**spec["genesys"], "integration_id": "no-such-integration"}}
    foreign = {**spec, "genesys": {**spec["genesys"], "integration_id": elsewhere["genesys"]["integration_id"]}}

    first = await bridge.client.post("/tenants", json=unknown, headers=admin)
    check = first.json()["checks"]["genesys.integrationId"]
    assert check == {"ok": False, "message": "no Open Messaging integration no-such-integration in this organisation"}
    await bridge.client.post(f"/tenants/{first.json()['id']}/suspend", headers=admin)
    assert (await bridge.client.delete(f"/tenants/{first.json()['id']}", headers=admin)).status_code == 204

    second = await bridge.client.post("/tenants", json=foreign, headers=admin)
    check = second.json()["checks"]["genesys.integrationId"]
    assert check["ok"] is False
    assert check["message"] == (
        f"the integration posts agent messages to https://other.example/hook, not to {bridge.url}/webhook/genesys"
    )


async def test_one_step_setup_creates_the_integration_with_a_generated_secret_and_subscribes_the_app(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    spec = tenant_spec()
    await bridge.meta.post(
        "/_sandbox/numbers",
        json={"phone_number_id": spec["whatsapp"]["phone_number_id"], "display_phone_number": "+1 555 0199",
              "waba_id": spec["whatsapp"]["waba_id"], "access_token": spec["whatsapp"]["access_token"],
              "app_secret": spec["whatsapp"]["app_secret"], "verify_token": spec["whatsapp"]["verify_token"],
              "webhook_url": f"{bridge.url}/webhook/whatsapp"},
    )  # fmt: skip
    org = "org-" + spec["genesys"]["client_id"]
    await bridge.genesys.post(
        "/_sandbox/clients",
        json={"client_id": spec["genesys"]["client_id"], "client_secret": spec["genesys"]["client_secret"],
              "org_id": org},
    )  # fmt: skip
    del spec["genesys"]["integration_id"], spec["genesys"]["webhook_secret"]
    spec["setup"] = {"create_integration": True, "subscribe_app": True, "integration_name": "Acme WhatsApp"}

    answer = await bridge.client.post("/tenants", json=spec, headers=admin)

    assert answer.status_code == 201, answer.text
    tenant = answer.json()
    assert all(check["ok"] for check in tenant["checks"].values()), tenant["checks"]
    assert {"setup.createIntegration", "setup.subscribeApp"} <= set(tenant["checks"])
    integration_id = tenant["genesys"]["integrationId"]
    (created,) = [i for i in (await bridge.genesys.get("/_sandbox/integrations")).json() if i["org_id"] == org]
    assert created == {
        "integration_id": integration_id,
        "name": "Acme WhatsApp",
        "org_id": org,
        "webhook_url": f"{bridge.url}/webhook/genesys",
    }
    subscribed = await bridge.meta.get(
        f"/v23.0/{spec['whatsapp']['waba_id']}/subscribed_apps",
        headers={"Authorization": f"Bearer {spec['whatsapp']['access_token']}"},
    )
    assert subscribed.json()["data"], subscribed.text
    # The generated secret is in Genesys and sealed in Xypr: an agent's message is signed with it and accepted.
    reply = await bridge.agent_says("16505551234", "Welcome!", integration_id=integration_id)
    assert reply["webhook_status"] == 200
    async with bridge.runtime.database.session() as session:
        stored = await session.get(Tenant, tenant["id"])
    assert stored is not None
    generated = bridge.runtime.box.open(stored.genesys_webhook_secret_sealed, tenant_id=stored.id)
    assert len(generated) > 15
    assert generated not in answer.text


async def test_a_failed_setup_step_creates_nothing_and_reports_why(bridge: Bridge, admin: dict[str, str]) -> None:
    spec = tenant_spec()
    await bridge.genesys.post(
        "/_sandbox/clients",
        json={"client_id": spec["genesys"]["client_id"], "client_secret": "the-real-secret", "org_id": "org-x"},
    )
    del spec["genesys"]["integration_id"], spec["genesys"]["webhook_secret"]
    spec["setup"] = {"create_integration": True}

    answer = await bridge.client.post("/tenants", json=spec, headers=admin)

    assert answer.status_code == 409, answer.text  # well formed; Genesys refused it
    error = answer.json()["error"]
    assert error["code"] == "onboarding_failed"
    assert error["checks"]["genesys.credentials"]["ok"] is False
    assert (await bridge.client.get("/tenants", headers=admin)).json()["total"] == 1  # the demo tenant only
    assert [i for i in (await bridge.genesys.get("/_sandbox/integrations")).json() if i["org_id"] == "org-x"] == []


async def test_setup_and_explicit_integration_fields_are_mutually_exclusive(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    spec = tenant_spec()
    spec["setup"] = {"create_integration": True}
    clash = await bridge.client.post("/tenants", json=spec, headers=admin)
    del spec["setup"], spec["genesys"]["webhook_secret"]
    missing = await bridge.client.post("/tenants", json=spec, headers=admin)

    assert clash.status_code == 400
    assert clash.json()["error"]["field"] == "genesys.integrationId"
    assert missing.status_code == 400
    assert missing.json()["error"]["field"] == "genesys.webhookSecret"


async def test_patch_reseals_a_changed_secret_returns_no_secret_and_forgets_the_genesys_token(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    spec = await _registered(bridge, tenant_spec())
    tenant_id = (await bridge.client.post("/tenants", json=spec, headers=admin)).json()["id"]
    async with bridge.runtime.database.session() as session:
        before = await session.get(Tenant, tenant_id)
    assert before is not None
    await bridge.runtime.cache.set(f"{tenant_id}:genesys-token", b"token-from-the-old-credentials")
    assert (await bridge.runtime.tenants.by_id(tenant_id)) is not None  # cached now

    answer = await bridge.client.patch(
        f"/tenants/{tenant_id}",
        json={"name": "Renamed", "genesys": {"client_secret": "a-brand-new-client-secret"},
              "whatsapp": {"app_secret": "a-brand-new-app-secret"}},
        headers=admin,
    )  # fmt: skip

    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["name"] == "Renamed"
    assert "a-brand-new" not in answer.text
    assert view["checks"]["genesys.credentials"]["ok"] is False  # Genesys does not know the new secret
    async with bridge.runtime.database.session() as session:
        after = await session.get(Tenant, tenant_id)
    assert after is not None
    assert after.genesys_client_secret_sealed != before.genesys_client_secret_sealed
    assert bridge.runtime.box.open(after.wa_app_secret_sealed, tenant_id=tenant_id) == "a-brand-new-app-secret"
    assert after.wa_access_token_sealed == before.wa_access_token_sealed  # untouched secrets stay as they were
    assert await bridge.runtime.cache.get(f"{tenant_id}:genesys-token") is None
    routed = await bridge.runtime.tenants.by_id(tenant_id)
    assert routed is not None
    assert routed.name == "Renamed"
    assert routed.wa_app_secret == "a-brand-new-app-secret"


async def test_patch_refuses_nulls_unknown_fields_and_bad_values_naming_the_field(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    path = f"/tenants/{await _demo_id(bridge)}"
    for body, field in (
        ({"name": None}, "name"),
        ({"whatsapp": {"access_token": None}}, "whatsapp.accessToken"),
        ({"genesys": {"region": "mars.pure.cloud"}}, "genesys.region"),
        ({"genesys": {"webhook_secret": "short"}}, "genesys.webhook_secret"),
        ({"whatsapp": {"colour": "blue"}}, "whatsapp.colour"),
        ({"settings": {"role_mapping": {"default": "xypr_admin"}}}, "settings.role_mapping.default"),
    ):
        answer = await bridge.client.patch(path, json=body, headers=admin)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["field"] == field, answer.text


@pytest.mark.parametrize(
    ("section", "field"),
    [("whatsapp", "access_token"), ("genesys", "client_secret"), ("genesys", "client_id")],
)
async def test_a_credential_sent_in_http_headers_must_be_visible_ascii_400_naming_the_field(
    bridge: Bridge, admin: dict[str, str], section: str, field: str
) -> None:
    spec = await _registered(bridge, tenant_spec())
    spec[section][field] = spec[section][field] + "\u2026"  # "…": a header cannot carry it
    created = await bridge.client.post("/tenants", json=spec, headers=admin)
    assert created.status_code == 400, created.text
    assert created.json()["error"]["field"] == f"{section}.{field}"
    patched = await bridge.client.patch(
        f"/tenants/{await _demo_id(bridge)}", json={section: {field: "tok\u2026en"}}, headers=admin
    )
    assert patched.status_code == 400, patched.text
    assert patched.json()["error"]["field"] == f"{section}.{field}"


async def test_onboarding_checks_report_a_credential_no_header_can_carry_and_never_raise(bridge: Bridge) -> None:
    from dataclasses import replace

    from xypr.tenants.onboarding import Onboarding

    tenant = await bridge.runtime.tenants.by_id(await _demo_id(bridge))
    assert tenant is not None
    # A tenant stored before the schema refused it (or written to the database by hand).
    odd = replace(tenant, wa_access_token="EAAG\u2026", genesys_client_secret="s\u00e9cret")
    onboarding = Onboarding(bridge.runtime.http, bridge.runtime.settings)
    checks = await onboarding.run_checks(odd)
    assert not checks["whatsapp.access_token"].ok
    assert "HTTP header" in checks["whatsapp.access_token"].message
    assert not checks["genesys.credentials"].ok
    assert "HTTP header" in checks["genesys.credentials"].message
    assert not (await onboarding.subscribe_app(odd)).ok


@pytest.mark.parametrize("path", ["/tenants", "/state/messages"])
async def test_an_offset_beyond_what_a_database_holds_is_400_not_500(
    bridge: Bridge, admin: dict[str, str], path: str
) -> None:
    scope = {"tenantId": await _demo_id(bridge)} if path.startswith("/state") else {}
    huge = {**scope, "offset": "37730184940256694039886275371073536"}
    answer = await bridge.client.get(path, params=huge, headers=admin)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"].endswith("offset")
    fine = await bridge.client.get(path, params={**scope, "offset": str(2**31 - 1)}, headers=admin)
    assert fine.status_code == 200, fine.text


async def test_a_tenant_admin_may_not_move_the_org_id_nor_take_a_number_its_token_cannot_read(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    spec = await _registered(bridge, tenant_spec())
    spec["genesys"]["org_id"] = "org-" + spec["genesys"]["client_id"]
    tenant_id = (await bridge.client.post("/tenants", json=spec, headers=admin)).json()["id"]
    own_admin = await login_as(bridge, Role.TENANT_ADMIN, spec)
    path = f"/tenants/{tenant_id}"

    org = await bridge.client.patch(path, json={"genesys": {"org_id": "someone-elses-org"}}, headers=own_admin)
    number = await bridge.client.patch(path, json={"whatsapp": {"phone_number_id": "999000111"}}, headers=own_admin)
    renamed = await bridge.client.patch(path, json={"name": "Our new name"}, headers=own_admin)
    by_platform = await bridge.client.patch(path, json={"whatsapp": {"phone_number_id": "999000111"}}, headers=admin)

    assert org.status_code == 403
    assert org.json()["error"]["field"] == "genesys.orgId"
    assert number.status_code == 409
    assert number.json()["error"]["code"] == "onboarding_failed"
    assert number.json()["error"]["checks"]["whatsapp.accessToken"]["ok"] is False
    assert renamed.status_code == 200
    assert renamed.json()["whatsapp"]["phoneNumberId"] == spec["whatsapp"]["phone_number_id"]
    assert by_platform.status_code == 200  # a Xypr admin may (the check is reported, not enforced)
    assert by_platform.json()["checks"]["whatsapp.accessToken"]["ok"] is False


async def test_an_identifier_of_another_tenant_is_a_conflict_naming_the_field(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    taken_number = await _registered(bridge, tenant_spec())
    taken_number["whatsapp"]["phone_number_id"] = bridge.demo["whatsapp"]["phone_number_id"]
    other = await _registered(bridge, tenant_spec())
    assert (await bridge.client.post("/tenants", json=other, headers=admin)).status_code == 201

    created = await bridge.client.post("/tenants", json=taken_number, headers=admin)
    moved = await bridge.client.patch(
        f"/tenants/{await _demo_id(bridge)}",
        json={"genesys": {"integration_id": other["genesys"]["integration_id"]}},
        headers=admin,
    )

    assert created.status_code == 409
    assert created.json()["error"]["field"] == "whatsapp.phoneNumberId"
    assert moved.status_code == 409
    assert moved.json()["error"]["field"] == "genesys.integrationId"


async def test_the_list_pages_oldest_first_with_the_total(bridge: Bridge, admin: dict[str, str]) -> None:
    names = []
    for _ in range(3):
        spec = await _registered(bridge, tenant_spec())
        names.append(spec["name"])
        assert (await bridge.client.post("/tenants", json=spec, headers=admin)).status_code == 201

    first = (await bridge.client.get("/tenants", params={"limit": 2}, headers=admin)).json()
    second = (await bridge.client.get("/tenants", params={"limit": 2, "offset": 2}, headers=admin)).json()
    suspended = (await bridge.client.get("/tenants", params={"status": "suspended"}, headers=admin)).json()
    bad = await bridge.client.get("/tenants", params={"limit": 0}, headers=admin)

    assert (first["total"], first["limit"], first["offset"]) == (4, 2, 0)
    assert [t["name"] for t in first["items"] + second["items"]] == [bridge.demo["name"], *names]
    assert suspended == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert bad.status_code == 400


async def test_deleting_needs_a_suspended_tenant_and_removes_it_with_its_data(
    bridge: Bridge, admin: dict[str, str]
) -> None:
    spec = await _registered(bridge, tenant_spec())
    tenant_id = (await bridge.client.post("/tenants", json=spec, headers=admin)).json()["id"]
    media_key = f"tenant/{tenant_id}/media/photo.jpg"
    await bridge.runtime.store.put(media_key, b"jpeg", content_type="image/jpeg")
    async with bridge.runtime.database.session() as session:
        session.add(Conversation(tenant_id=tenant_id, wa_id="16505551234"))
        session.add(Media(tenant_id=tenant_id, wamid="wamid.M", media_id="m-1", object_key=media_key,
                          mime_type="image/jpeg", sha256="00" * 32, size=4))  # fmt: skip

    refused = await bridge.client.delete(f"/tenants/{tenant_id}", headers=admin)
    await bridge.client.post(f"/tenants/{tenant_id}/suspend", headers=admin)
    deleted = await bridge.client.delete(f"/tenants/{tenant_id}", headers=admin)
    again = await bridge.client.get(f"/tenants/{tenant_id}", headers=admin)

    assert refused.status_code == 409
    assert deleted.status_code == 204
    assert again.status_code == 404
    async with bridge.runtime.database.session() as session:
        assert await session.scalar(select(Conversation).where(Conversation.tenant_id == tenant_id)) is None
        assert await session.scalar(select(Media).where(Media.tenant_id == tenant_id)) is None
    assert not await bridge.runtime.store.exists(media_key)
    assert await bridge.runtime.tenants.by_phone_number_id(spec["whatsapp"]["phone_number_id"]) is None


async def test_the_app_forgets_its_cached_tenants_when_another_process_announces_a_change(bridge: Bridge) -> None:
    tenant_id = await _demo_id(bridge)
    assert await bridge.runtime.tenants.by_id(tenant_id) is not None  # cached now, for 30 s
    async with bridge.runtime.database.session() as session:
        await session.execute(update(Tenant).where(Tenant.id == tenant_id).values(name="Changed elsewhere"))
    cached = await bridge.runtime.tenants.by_id(tenant_id)
    assert cached is not None
    assert cached.name != "Changed elsewhere"

    # What another process's tenant service publishes after a change (the app's lifespan subscribed to it).
    await bridge.runtime.cache.publish(TENANT_CHANGES, b'{"tenant_id": "%s", "change": "updated"}' % tenant_id.encode())

    async def renamed() -> bool:
        seen = await bridge.runtime.tenants.by_id(tenant_id)
        return seen is not None and seen.name == "Changed elsewhere"

    assert await eventually(renamed, within=5)


async def test_the_api_is_documented_at_docs_with_tags_and_examples(bridge: Bridge) -> None:
    page = await bridge.client.get("/docs")
    schema = (await bridge.client.get("/openapi.json")).json()

    assert page.status_code == 200
    assert "swagger" in page.text.lower()
    paths = schema["paths"]
    expected = {
        ("/tenants", "post"), ("/tenants", "get"), ("/tenants/{tenantId}", "get"), ("/tenants/{tenantId}", "patch"),
        ("/tenants/{tenantId}", "delete"), ("/tenants/{tenantId}/checks", "post"),
        ("/tenants/{tenantId}/suspend", "post"), ("/tenants/{tenantId}/reactivate", "post"),
        ("/state/mapping", "post"), ("/state/mapping/{waId}", "get"), ("/state/conversation/{conversationId}", "get"),
        ("/state/context/{conversationId}", "get"), ("/state/context/{conversationId}", "put"),
        ("/state/message", "post"), ("/state/messages", "get"), ("/state/stats", "get"),
        ("/state/media/{mediaId}", "get"),
    }  # fmt: skip
    for path, method in expected:
        operation = paths[path][method]
        assert operation["tags"] == ["tenants" if path.startswith("/tenants") else "state"], path
        assert operation["summary"], (path, method)
        assert operation["description"], (path, method)
    components = schema["components"]["schemas"]
    for model in ("TenantCreate", "TenantView", "TenantUpdate", "MappingRequest", "StatsView", "ErrorBody"):
        assert components[model].get("examples"), model


async def _demo_id(bridge: Bridge) -> str:
    tenant = await bridge.runtime.tenants.by_phone_number_id(bridge.demo["whatsapp"]["phone_number_id"])
    assert tenant is not None
    return tenant.id
