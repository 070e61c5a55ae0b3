"""The emulated Genesys around the agent: the implicit grant with a login session, client apps, the agentless
messages API and transcripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.sandbox.webhook_receiver import WebhookReceiver
from xypr.sandbox.genesys import create_genesys_app

CLIENT = "widget-client"
REDIRECT = "https://xypr.test/widget/signed-in"
ORG = "org-a"
INTEGRATION = "i-1"


@pytest.fixture
async def genesys() -> AsyncIterator[tuple[httpx.AsyncClient, WebhookReceiver]]:
    receiver = WebhookReceiver()
    async with receiver.client() as webhooks:
        app = create_genesys_app(base_url="http://genesys.test", http_client=webhooks)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://genesys.test") as client:
            clients = await client.post(
                "/_sandbox/oauth/clients", json={"client_id": CLIENT, "redirect_uris": [REDIRECT]}
            )
            clients.raise_for_status()
            (await client.post("/_sandbox/integrations", json={
                "integration_id": INTEGRATION, "name": "Acme", "client_id": "cc", "client_secret": "cc-secret",
                "webhook_url": "http://xypr.test/webhook/genesys", "webhook_secret": "0123456789abcdef",
                "org_id": ORG,
            })).raise_for_status()  # fmt: skip
            (await client.post("/_sandbox/users", json={"org_id": ORG, "name": "Alex", "email": "alex@a.test",
                                                        "id": "u-1"})).raise_for_status()  # fmt: skip
            yield client, receiver


async def _token(client: httpx.AsyncClient) -> dict[str, str]:
    answer = await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=("cc", "cc-secret"))
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _implicit(**extra: str) -> dict[str, str]:
    return {"response_type": "token", "client_id": CLIENT, "redirect_uri": REDIRECT, "state": "s", **extra}


async def test_implicit_grant_answers_in_the_fragment_and_a_session_skips_the_prompt(genesys: Any) -> None:
    client, _receiver = genesys
    silent = await client.get("/oauth/authorize", params=_implicit(prompt="none"))
    assert silent.status_code == 302
    assert parse_qs(urlsplit(silent.headers["location"]).fragment)["error"] == ["login_required"]
    page = await client.get("/oauth/authorize", params=_implicit())
    assert page.status_code == 200
    assert "Alex" in page.text

    signed = await client.post("/oauth/authorize", data={**_implicit(), "login": "u-1"})
    fragment = parse_qs(urlsplit(signed.headers["location"]).fragment)
    assert fragment["state"] == ["s"]
    assert fragment["token_type"] == ["bearer"]
    me = await client.get("/api/v2/users/me", headers={"Authorization": f"Bearer {fragment['access_token'][0]}"})
    assert me.json()["id"] == "u-1"

    again = await client.get(
        "/oauth/authorize", params=_implicit(prompt="none")
    )  # the session cookie, kept like a browser
    assert "access_token" in parse_qs(urlsplit(again.headers["location"]).fragment)
    bad_redirect = await client.get("/oauth/authorize", params=_implicit(redirect_uri="https://evil.test/"))
    assert bad_redirect.status_code == 400  # never redirected anywhere unregistered


async def test_client_app_is_created_configured_and_enabled(genesys: Any) -> None:
    client, _receiver = genesys
    headers = await _token(client)
    refused = await client.post("/api/v2/integrations", json={"integrationType": {"id": "bogus"}}, headers=headers)
    assert refused.status_code == 400
    created = await client.post(
        "/api/v2/integrations", json={"integrationType": {"id": "embedded-client-app-interaction-widget"}},
        headers=headers,
    )  # fmt: skip
    app_id = created.json()["id"]
    assert created.json()["intendedState"] == "DISABLED"
    current = (await client.get(f"/api/v2/integrations/{app_id}/config/current", headers=headers)).json()
    configured = await client.put(
        f"/api/v2/integrations/{app_id}/config/current",
        json={"name": "W", "version": current["version"], "properties": {"url": "https://x.test/widget"}},
        headers=headers,
    )
    assert configured.json()["properties"]["url"] == "https://x.test/widget"
    enabled = await client.patch(f"/api/v2/integrations/{app_id}", json={"intendedState": "ENABLED"}, headers=headers)
    assert enabled.json()["intendedState"] == "ENABLED"
    assert [a["id"] for a in (await client.get("/api/v2/integrations", headers=headers)).json()["entities"]] == [app_id]
    assert (await client.patch(f"/api/v2/integrations/{app_id}", json={"intendedState": "ENABLED"})).status_code == 401


async def test_agentless_message_joins_the_conversation_transcript_and_reaches_the_webhook(genesys: Any) -> None:
    client, receiver = genesys
    headers = await _token(client)
    inbound = await client.post(
        f"/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message?prefetchConversationId=true",
        json={"channel": {"from": {"id": "16505551234", "idType": "Phone"}, "time": "2026-03-01T10:00:00.000Z"},
              "text": "Hi"},
        headers=headers,
    )  # fmt: skip
    conversation = inbound.json()["conversationId"]
    template = {"contentType": "Notification", "template": {"id": "w@order_update", "language": "en-US"}}
    body = {"fromAddress": INTEGRATION, "toAddress": "16505551234", "toAddressMessengerType": "open",
            "textBody": "Your order ships Friday.", "useExistingActiveConversation": True,
            "content": [template]}  # fmt: skip
    sent = await client.post("/api/v2/conversations/messages/agentless", json=body, headers=headers)
    assert sent.status_code == 200, sent.text
    assert sent.json()["conversationId"] == conversation
    transcript = (await client.get(f"/_sandbox/conversations/{conversation}/transcript")).json()["messages"]
    assert [(m["direction"], m["text"]) for m in transcript] == [
        ("inbound", "Hi"), ("outbound", "Your order ships Friday."),
    ]  # fmt: skip
    [webhook] = [hit.json() for hit in receiver.posts()]
    assert webhook["type"] == "Structured"
    assert webhook["text"] == "Your order ships Friday."
    assert webhook["content"][0]["contentType"] == "Notification"

    not_existing = await client.post(
        "/api/v2/conversations/messages/agentless", json={**body, "useExistingActiveConversation": False},
        headers=headers,
    )  # fmt: skip
    assert not_existing.status_code == 400  # the customer has an active conversation
    wrong_type = {**body, "toAddressMessengerType": "sms"}
    empty = {**body, "textBody": None, "content": []}
    for refused in (wrong_type, empty):
        answer = await client.post("/api/v2/conversations/messages/agentless", json=refused, headers=headers)
        assert answer.status_code == 400
