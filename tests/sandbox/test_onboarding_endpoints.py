"""The emulators' onboarding endpoints: Open Messaging integration create/read (Genesys), subscribed_apps (Meta)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from xypr.sandbox.genesys import create_genesys_app
from xypr.sandbox.meta.app import create_meta_app

OPEN = "/api/v2/conversations/messaging/integrations/open"
CLIENT = {"client_id": "onboarding-client", "client_secret": "onboarding-secret", "org_id": "org-1"}
NUMBER = {
    "phone_number_id": "106540352242922",
    "display_phone_number": "+1 555 0100",
    "waba_id": "102290129340398",
    "access_token": "EAAG-token",
    "app_secret": "app-secret",
    "verify_token": "verify",
    "webhook_url": "http://xypr.test/webhook/whatsapp",
}


@pytest.fixture
async def genesys() -> AsyncIterator[httpx.AsyncClient]:
    app = create_genesys_app(base_url="http://genesys.test")
    app.state.sandbox.integration_create_seconds = 0.2
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://genesys.test") as client:
        yield client


@pytest.fixture
async def meta() -> AsyncIterator[httpx.AsyncClient]:
    app = create_meta_app(base_url="http://meta.test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://meta.test") as client:
        assert (await client.post("/_sandbox/numbers", json=NUMBER)).status_code == 200
        yield client


async def _token(genesys: httpx.AsyncClient, client_id: str, secret: str) -> dict[str, str]:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = await genesys.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _integration(url: str = "https://xypr.example.com/webhook/genesys", secret: str = "s" * 16) -> dict[str, str]:
    return {
        "name": "Acme WhatsApp",
        "outboundNotificationWebhookUrl": url,
        "outboundNotificationWebhookSignatureSecretToken": secret,
    }


async def test_a_registered_client_gets_a_token_before_any_integration_exists(genesys: httpx.AsyncClient) -> None:
    await genesys.post("/_sandbox/clients", json=CLIENT)

    await _token(genesys, CLIENT["client_id"], CLIENT["client_secret"])
    wrong = await genesys.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(b"onboarding-client:guess").decode()},
    )

    assert wrong.status_code == 401


async def test_a_created_integration_is_initiated_then_completed_and_never_echoes_its_secret(
    genesys: httpx.AsyncClient,
) -> None:
    await genesys.post("/_sandbox/clients", json=CLIENT)
    token = await _token(genesys, CLIENT["client_id"], CLIENT["client_secret"])

    created = await genesys.post(OPEN, json=_integration(), headers=token)

    assert created.status_code == 200, created.text
    integration = created.json()
    assert integration["createStatus"] == "Initiated"
    assert integration["outboundNotificationWebhookUrl"] == "https://xypr.example.com/webhook/genesys"
    assert integration["selfUri"] == f"{OPEN}/{integration['id']}"
    assert "s" * 16 not in created.text
    await asyncio.sleep(0.25)
    read = await genesys.get(f"{OPEN}/{integration['id']}", headers=token)
    assert read.json()["createStatus"] == "Completed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_integration(url="http://xypr.example.com/webhook"), "outboundNotificationWebhookUrl"),
        (_integration(url="https://xypr.example.com:8443/webhook"), "outboundNotificationWebhookUrl"),
        (_integration(secret="fifteen-chars!!"), "outboundNotificationWebhookSignatureSecretToken"),
        ({**_integration(), "name": " "}, "name"),
    ],
)
async def test_an_integration_needs_https_on_443_a_secret_over_15_characters_and_a_name(
    genesys: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    await genesys.post("/_sandbox/clients", json=CLIENT)
    token = await _token(genesys, CLIENT["client_id"], CLIENT["client_secret"])

    answer = await genesys.post(OPEN, json=body, headers=token)

    assert answer.status_code == 400
    assert answer.json()["details"] == [{"errorCode": "bad.request", "fieldName": field}]


async def test_another_organisations_integration_does_not_exist_for_the_caller(genesys: httpx.AsyncClient) -> None:
    await genesys.post("/_sandbox/clients", json=CLIENT)
    await genesys.post("/_sandbox/clients", json={"client_id": "other", "client_secret": "other-s", "org_id": "org-2"})
    created = await genesys.post(
        OPEN, json=_integration(), headers=await _token(genesys, CLIENT["client_id"], CLIENT["client_secret"])
    )

    foreign = await genesys.get(f"{OPEN}/{created.json()['id']}", headers=await _token(genesys, "other", "other-s"))
    anonymous = await genesys.get(f"{OPEN}/{created.json()['id']}")

    assert foreign.status_code == 404
    assert anonymous.status_code == 401


async def test_the_app_is_subscribed_to_a_waba_only_with_a_token_of_that_waba(meta: httpx.AsyncClient) -> None:
    token = {"Authorization": f"Bearer {NUMBER['access_token']}"}
    path = f"/v23.0/{NUMBER['waba_id']}/subscribed_apps"

    before = await meta.get(path, headers=token)
    subscribed = await meta.post(path, headers=token)
    after = await meta.get(path, headers=token)
    bad_token = await meta.post(path, headers={"Authorization": "Bearer nope"})
    other_waba = await meta.post("/v23.0/999999/subscribed_apps", headers=token)

    assert before.json() == {"data": []}
    assert subscribed.json() == {"success": True}
    assert after.json()["data"][0]["whatsapp_business_api_data"]["name"] == "Xypr"
    assert bad_token.json()["error"]["code"] == 190
    assert other_waba.json()["error"]["code"] == 100
