"""The emulated Genesys Cloud follows the published contracts: OAuth, Open Messaging inbound, faults, webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.sandbox.payload_shapes import shape
from tests.sandbox.webhook_receiver import WebhookReceiver
from tests.support.contracts import contract
from xypr.sandbox.genesys import GenesysSandbox, create_genesys_app

INTEGRATION = {
    "integration_id": "73cb7fb7-c2db-4996-88f3-0a83a4fea1da",
    "name": "Open Messaging Integration",
    "client_id": "client-a",
    "client_secret": "secret-a",
    "webhook_url": "http://xypr.test/webhook/genesys",
    "webhook_secret": "a-webhook-secret-longer-than-15",
    "org_id": "org-a",
}
INBOUND = f"/api/v2/conversations/messages/{INTEGRATION['integration_id']}/inbound/open"
GENESYS_ID = re.compile(r"^[0-9a-f]{32}$")
GENESYS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(text: str = "Hello World", customer: str = "16505551234", **extra: Any) -> dict[str, Any]:
    """An inbound message like captured-openmessaging-inbound-text.json, timed now."""
    body: dict[str, Any] = contract("genesys/captured-openmessaging-inbound-text.json")
    body["channel"]["from"] = {"id": customer, "idType": "Phone", "nickname": "Sheena"}
    body["channel"]["time"] = now()
    body["text"] = text
    body.update(extra)
    return body


def receipt(message_id: str, status: str = "Delivered", **extra: Any) -> dict[str, Any]:
    return {
        "id": message_id,
        "channel": {"to": {"id": "16505551234", "idType": "Phone"}, "time": now()},
        "status": status,
        "isFinalReceipt": True,
        **extra,
    }


@dataclass
class Genesys:
    """The emulator, a client on it, a bearer token for the integration, and Xypr's stand-in receiver."""

    client: httpx.AsyncClient
    sandbox: GenesysSandbox
    receiver: WebhookReceiver
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, kind: str, body: Any, **params: str) -> httpx.Response:
        return await self.client.post(f"{INBOUND}/{kind}", json=body, headers=self.auth, params=params)

    async def agent_says(
        self, text: str | None = "Yes, in blue.", to: str = "16505551234", **extra: Any
    ) -> dict[str, Any]:
        answer = await self.client.post(
            f"/_sandbox/integrations/{INTEGRATION['integration_id']}/agent/messages",
            json={"to": to, "text": text, **extra},
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


async def fetch_token(
    client: httpx.AsyncClient, credentials: tuple[str, str] = ("client-a", "secret-a")
) -> httpx.Response:
    return await client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(*credentials))


@pytest.fixture
async def genesys() -> AsyncIterator[Genesys]:
    receiver = WebhookReceiver()
    async with receiver.client() as webhooks:
        app = create_genesys_app(base_url="http://genesys.test", http_client=webhooks, webhook_backoff=0.001)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://genesys.test") as client:
            assert (await client.post("/_sandbox/integrations", json=INTEGRATION)).status_code == 200
            token = (await fetch_token(client)).json()["access_token"]
            yield Genesys(client, app.state.sandbox, receiver, token)
            await app.state.sandbox.aclose()


def assert_genesys_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    assert answer.status_code == status
    assert set(body) == {
        "message",
        "code",
        "status",
        "messageWithParams",
        "messageParams",
        "contextId",
        "details",
        "errors",
    }
    assert (body["status"], body["code"]) == (status, code)
    uuid.UUID(body["contextId"])
    return body


# -- OAuth ------------------------------------------------------------------------------------------------


async def test_client_credentials_grant_answers_a_bearer_token(genesys: Genesys) -> None:
    answer = await fetch_token(genesys.client)
    assert answer.status_code == 200
    assert set(answer.json()) == {"access_token", "token_type", "expires_in"}
    assert (answer.json()["token_type"], answer.json()["expires_in"]) == ("bearer", 86400)


@pytest.mark.parametrize(
    "headers",
    [basic("client-a", "wrong"), basic("nobody", "secret-a"), {}, {"Authorization": "Basic !!notbase64"}],
    ids=["wrong secret", "unknown client", "no credentials", "garbage"],
)
async def test_bad_client_credentials_are_401_invalid_client(genesys: Genesys, headers: dict[str, str]) -> None:
    answer = await genesys.client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.json()["description"]


async def test_wrong_or_missing_grant_type_is_400(genesys: Genesys) -> None:
    headers = basic("client-a", "secret-a")
    wrong = await genesys.client.post("/oauth/token", data={"grant_type": "password"}, headers=headers)
    assert (wrong.status_code, wrong.json()["error"]) == (400, "unsupported_grant_type")
    missing = await genesys.client.post("/oauth/token", json={"grant_type": "client_credentials"}, headers=headers)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")


async def test_token_ttl_applies_to_tokens_issued_afterwards(genesys: Genesys) -> None:
    await genesys.client.post("/_sandbox/tokens/ttl", json={"seconds": 60})
    assert (await fetch_token(genesys.client)).json()["expires_in"] == 60


# -- bearer checks --------------------------------------------------------------------------------------------


async def test_inbound_without_a_token_is_401_authentication_required(genesys: Genesys) -> None:
    answer = await genesys.client.post(f"{INBOUND}/message", json=message())
    assert_genesys_error(answer, 401, "authentication.required")


async def test_inbound_with_an_unknown_token_is_401_bad_credentials(genesys: Genesys) -> None:
    genesys.token = "not-a-token"
    assert_genesys_error(await genesys.post("message", message()), 401, "bad.credentials")


async def test_expired_tokens_are_refused_until_a_new_one_is_fetched(genesys: Genesys) -> None:
    assert (await genesys.post("message", message())).status_code == 200
    assert (await genesys.client.post("/_sandbox/tokens/expire")).json() == {"expired": 1}
    assert_genesys_error(await genesys.post("message", message()), 401, "bad.credentials")
    genesys.token = (await fetch_token(genesys.client)).json()["access_token"]
    assert (await genesys.post("message", message())).status_code == 200


async def test_unknown_integration_is_404(genesys: Genesys) -> None:
    answer = await genesys.client.post(
        "/api/v2/conversations/messages/nope/inbound/open/message", json=message(), headers=genesys.auth
    )
    assert_genesys_error(answer, 404, "not.found")


async def test_a_client_of_another_org_may_not_use_the_integration(genesys: Genesys) -> None:
    other = {**INTEGRATION, "integration_id": "b-integration", "client_id": "client-b", "client_secret": "secret-b"}
    await genesys.client.post("/_sandbox/integrations", json={**other, "org_id": "org-b"})
    genesys.token = (await fetch_token(genesys.client, ("client-b", "secret-b"))).json()["access_token"]
    assert_genesys_error(await genesys.post("message", message()), 403, "not.authorized")


# -- inbound messages ------------------------------------------------------------------------------------------


async def test_valid_inbound_message_answers_a_genesys_message_and_is_recorded(genesys: Genesys) -> None:
    body = message(channel={**message()["channel"], "messageId": "wamid.ABC"})
    answer = await genesys.post("message", body)
    assert answer.status_code == 200
    reply = answer.json()
    assert GENESYS_ID.match(reply["id"])
    assert (reply["direction"], reply["type"], reply["text"]) == ("Inbound", "Text", "Hello World")
    assert reply["channel"]["messageId"] == "wamid.ABC"
    assert reply["channel"]["from"]["id"] == "16505551234"
    assert "conversationId" not in reply
    (received,) = (await genesys.client.get("/_sandbox/received", params={"kind": "message"})).json()
    assert (received["id"], received["body"], received["customer_id"]) == (reply["id"], body, "16505551234")


async def test_captured_attachment_message_is_accepted(genesys: Genesys) -> None:
    body = contract("genesys/captured-openmessaging-inbound-attachment-image.json")
    body["channel"]["time"] = now()
    answer = await genesys.post("message", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"] == body["content"]


async def test_prefetched_conversation_id_is_stable_per_customer(genesys: Genesys) -> None:
    first = (await genesys.post("message", message(), prefetchConversationId="true")).json()["conversationId"]
    again = (await genesys.post("message", message("again"), prefetchConversationId="true")).json()["conversationId"]
    other = (await genesys.post("message", message(customer="442071234567"), prefetchConversationId="true")).json()
    assert first == again
    uuid.UUID(first)
    assert other["conversationId"] != first
    await genesys.client.post(
        "/_sandbox/conversations/disconnect",
        json={"integration_id": INTEGRATION["integration_id"], "customer_id": "16505551234"},
    )
    after = (await genesys.post("message", message("new chat"), prefetchConversationId="true")).json()
    assert after["conversationId"] != first
    received = (await genesys.client.get("/_sandbox/received")).json()
    assert received[0]["conversationId"] == received[0]["conversation_id"] == first


def _with(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `base` (an inbound message) with the dotted `path` set to `value` (or removed if ...)."""
    body = base if base is not None else message()
    node = body
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return body


def _attachment(**attachment: Any) -> list[dict[str, Any]]:
    return [{"contentType": "Attachment", "attachment": {"mediaType": "Image", "url": "https://x/y.jpg", **attachment}}]


INVALID: dict[str, tuple[str, dict[str, Any], str]] = {
    "no channel.from.id": ("message", _with("channel.from.id", ...), "channel.from.id"),
    "lower-case idType": ("message", _with("channel.from.idType", "phone"), "channel.from.idType"),
    "unknown idType": ("message", _with("channel.from.idType", "WhatsApp"), "channel.from.idType"),
    "no channel.from": ("message", _with("channel.from", ...), "channel.from"),
    "time not UTC": ("message", _with("channel.time", "2021-02-01T15:04:05+02:00"), "channel.time"),
    "time not ISO": ("message", _with("channel.time", "yesterday"), "channel.time"),
    "no time": ("message", _with("channel.time", ...), "channel.time"),
    "neither text nor content": ("message", _with("text", ...), "text or content"),
    "unknown contentType": (
        "message",
        _with("content", [{"contentType": "Sticker", "attachment": {}}]),
        "content[0].contentType",
    ),
    "unknown mediaType": ("message", _with("content", _attachment(mediaType="Sticker")), "mediaType"),
    "attachment without url": (
        "message",
        _with("content", [{"contentType": "Attachment", "attachment": {"mediaType": "Image"}}]),
        "content[0].attachment.url",
    ),
    "metadata not string to string": ("message", _with("metadata", {"count": 3}), "metadata.count"),
    "text not a string": ("message", _with("text", 42), "text"),
    "receipt status Read": ("receipt", receipt("a" * 32, "Read"), "status"),
    "receipt unknown reason": ("receipt", receipt("a" * 32, "Failed", reasons=[{"code": "Nope"}]), "reasons[0].code"),
    "receipt isFinalReceipt not bool": ("receipt", receipt("a" * 32, isFinalReceipt="yes"), "isFinalReceipt"),
    "receipt without channel.to.id": (
        "receipt",
        _with("channel.to", ..., receipt("a" * 32)),
        "channel.to",
    ),
    "receipt without id": ("receipt", _with("id", ..., receipt("a" * 32)), "id"),
    "event of unknown type": (
        "event",
        {"channel": message()["channel"], "events": [{"eventType": "Presence"}]},
        "events[0].eventType",
    ),
    "event list empty": ("event", {"channel": message()["channel"], "events": []}, "events"),
    "structured of wrong type": (
        "structured/response",
        {"channel": message()["channel"], "type": "Text", "content": []},
        "type",
    ),
    "button response of unknown type": (
        "structured/response",
        {
            "channel": message()["channel"],
            "type": "Structured",
            "content": [
                {"contentType": "ButtonResponse", "buttonResponse": {"type": "Link", "text": "a", "payload": "b"}}
            ],
        },
        "content[0].buttonResponse.type",
    ),
}


@pytest.mark.parametrize("case", INVALID)
async def test_invalid_inbound_body_is_400_naming_the_field(genesys: Genesys, case: str) -> None:
    kind, body, field = INVALID[case]
    answer = await genesys.post(kind, body)
    error = assert_genesys_error(answer, 400, "bad.request")
    assert field in error["message"]
    assert (await genesys.client.get("/_sandbox/received")).json() == []


async def test_malformed_json_is_400(genesys: Genesys) -> None:
    answer = await genesys.client.post(
        f"{INBOUND}/message", content=b"{oops", headers={**genesys.auth, "Content-Type": "application/json"}
    )
    assert_genesys_error(answer, 400, "bad.request")


# -- receipts, events, structured responses -------------------------------------------------------------------


async def test_receipts_are_accepted_and_matched_to_outbound_messages(genesys: Genesys) -> None:
    sent = await genesys.agent_says()
    delivered = await genesys.post("receipt", receipt(sent["id"]))
    assert delivered.status_code == 200
    assert (delivered.json()["id"], delivered.json()["status"]) == (sent["id"], "Delivered")
    failed = receipt(sent["id"], "Failed", reasons=[{"code": "MessageExpired", "message": "131047"}])
    assert (await genesys.post("receipt", failed)).status_code == 200
    assert (await genesys.post("receipt", receipt("f" * 32))).status_code == 200
    received = (await genesys.client.get("/_sandbox/received", params={"kind": "receipt"})).json()
    assert [r["matched_outbound"] for r in received] == [True, True, False]


async def test_typing_event_and_button_response_are_accepted(genesys: Genesys) -> None:
    channel = message()["channel"]
    event = {"channel": channel, "events": [{"eventType": "Typing", "typing": {"type": "On"}}]}
    answer = await genesys.post("event", event)
    assert (answer.status_code, answer.json()["type"]) == (200, "Event")
    structured = {
        "channel": channel,
        "type": "Structured",
        "content": [
            {"contentType": "ButtonResponse", "buttonResponse": {"type": "QuickReply", "text": "Yes", "payload": "YES"}}
        ],
        "originatingMessageId": "a" * 32,
    }
    answer = await genesys.post("structured/response", structured)
    assert (answer.status_code, answer.json()["originatingMessageId"]) == (200, "a" * 32)
    kinds = [r["kind"] for r in (await genesys.client.get("/_sandbox/received")).json()]
    assert kinds == ["event", "structured"]


# -- faults ----------------------------------------------------------------------------------------------------


async def test_injected_429_carries_retry_after_and_lasts_count_calls(genesys: Genesys) -> None:
    await genesys.client.post("/_sandbox/faults", json={"status": 429, "count": 2, "retry_after": 7})
    for _ in range(2):
        answer = await genesys.post("message", message())
        error = assert_genesys_error(answer, 429, "too.many.requests.retry.after")
        assert answer.headers["retry-after"] == "7"
        assert "[7]" in error["message"]
    assert (await genesys.post("message", message())).status_code == 200
    assert len((await genesys.client.get("/_sandbox/received")).json()) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_injected_5xx_answers_that_status(genesys: Genesys, status: int) -> None:
    await genesys.client.post("/_sandbox/faults", json={"status": status})
    assert (await genesys.post("receipt", receipt("a" * 32))).status_code == status
    assert (await genesys.post("receipt", receipt("a" * 32))).status_code == 200


async def test_a_fault_for_one_integration_leaves_others_alone(genesys: Genesys) -> None:
    await genesys.client.post("/_sandbox/faults", json={"status": 503, "integration_id": "someone-else"})
    assert (await genesys.post("message", message())).status_code == 200


async def test_an_outage_lasts_its_seconds_unless_ended_by_deleting_the_faults(genesys: Genesys) -> None:
    await genesys.client.post("/_sandbox/faults", json={"status": 503, "seconds": 600})
    for _ in range(3):
        assert (await genesys.post("message", message())).status_code == 503
    assert (await genesys.client.delete("/_sandbox/faults")).json() == {"cleared": 1}
    assert (await genesys.post("message", message())).status_code == 200
    assert (await genesys.client.delete("/_sandbox/faults")).json() == {"cleared": 0}


# -- agent simulation -------------------------------------------------------------------------------------------


async def test_agent_message_is_an_outbound_webhook_signed_with_base64_hmac(genesys: Genesys) -> None:
    result = await genesys.agent_says("Yes, in blue.")
    assert (result["webhook_status"], result["attempts"]) == (200, 1)
    (hit,) = genesys.receiver.posts()
    digest = hmac.new(INTEGRATION["webhook_secret"].encode(), hit.body, hashlib.sha256).digest()
    assert hit.headers["x-hub-signature-256"] == "sha256=" + base64.b64encode(digest).decode()
    body = hit.json()
    captured = contract("genesys/captured-openmessaging-outbound-text.json")
    assert set(body) == set(captured)
    assert set(body["channel"]) == set(captured["channel"])
    assert GENESYS_ID.match(body["id"])
    assert body["id"] == body["channel"]["messageId"] == result["id"]
    assert (body["direction"], body["originatingEntity"], body["type"], body["text"]) == (
        "Outbound",
        "Human",
        "Text",
        "Yes, in blue.",
    )
    channel = body["channel"]
    assert (channel["id"], channel["platform"], channel["type"]) == (INTEGRATION["integration_id"], "Open", "Private")
    assert channel["to"] == {"id": "16505551234"}
    assert channel["from"] == {
        "nickname": INTEGRATION["name"],
        "id": INTEGRATION["integration_id"],
        "idType": "Opaque",
    }
    assert GENESYS_TIME.match(channel["time"])
    assert body["content"] == []


async def test_agent_message_can_carry_attachments_and_a_to_id_type(genesys: Genesys) -> None:
    attachment = contract("genesys/captured-openmessaging-outbound-attachment-image.json")["content"]
    await genesys.agent_says(text=None, content=attachment, to_id_type="Phone")
    body = genesys.receiver.posts()[0].json()
    assert body["content"] == attachment
    assert "text" not in body
    assert body["channel"]["to"] == {"id": "16505551234", "idType": "Phone"}


async def test_an_agent_file_uploaded_as_a_form_is_served_at_its_url_and_previewed_without_counting(
    genesys: Genesys,
) -> None:
    uploaded = await genesys.client.post(
        "/_sandbox/attachments", files={"file": ("manual.pdf", b"%PDF-1.4 manual", "application/pdf")}
    )
    attachment = uploaded.json()
    assert (attachment["mediaType"], attachment["mime"], attachment["filename"], attachment["contentSizeBytes"]) == (
        "File",
        "application/pdf",
        "manual.pdf",
        15,
    )
    assert attachment["url"] == f"http://genesys.test/api/v2/downloads/{attachment['id']}"

    preview = await genesys.client.get(f"/_sandbox/attachments/{attachment['id']}/content")
    assert (preview.status_code, preview.content) == (200, b"%PDF-1.4 manual")
    assert preview.headers["content-disposition"].startswith("attachment;")  # not an image: downloaded, not shown
    assert (await genesys.client.get("/_sandbox/attachments/downloads")).json() == []

    download = await genesys.client.get(attachment["url"])
    assert download.content == b"%PDF-1.4 manual"
    assert (await genesys.client.get("/_sandbox/attachments/downloads")).json() == [attachment["id"]]


async def test_an_empty_or_missing_agent_file_is_refused(genesys: Genesys) -> None:
    empty = await genesys.client.post("/_sandbox/attachments", files={"file": ("a.png", b"", "image/png")})
    missing = await genesys.client.post("/_sandbox/attachments", files={"other": ("a.png", b"x", "image/png")})
    assert (empty.status_code, missing.status_code) == (400, 400)
    assert (await genesys.client.get("/_sandbox/attachments/nope/content")).status_code == 404


async def test_agent_webhook_is_retried_on_503_and_stops_after_5_retries(genesys: Genesys) -> None:
    genesys.receiver.always = 503
    result = await genesys.agent_says()
    assert (result["webhook_status"], result["attempts"]) == (503, 6)
    assert len(genesys.receiver.posts()) == 6
    assert len({hit.body for hit in genesys.receiver.posts()}) == 1  # the same message each time
    (sent,) = (await genesys.client.get("/_sandbox/sent")).json()
    assert (sent["webhook_status"], sent["attempts"]) == (503, 6)


@pytest.mark.parametrize(("failures", "attempts"), [([503, 429], 3), ([500], 2)])
async def test_agent_webhook_succeeds_after_transient_failures(
    genesys: Genesys, failures: list[int], attempts: int
) -> None:
    genesys.receiver.failures = list(failures)
    result = await genesys.agent_says()
    assert (result["webhook_status"], result["attempts"]) == (200, attempts)


async def test_agent_webhook_is_not_retried_on_a_4xx_answer(genesys: Genesys) -> None:
    genesys.receiver.always = 401
    assert (await genesys.agent_says())["attempts"] == 1


async def test_agent_typing_event_is_shaped_like_the_documented_event(genesys: Genesys) -> None:
    answer = await genesys.client.post(
        f"/_sandbox/integrations/{INTEGRATION['integration_id']}/agent/typing", json={"to": "16505551234"}
    )
    assert answer.json()["webhook_status"] == 200
    body = genesys.receiver.posts()[0].json()
    assert shape(body) == shape(contract("genesys/outbound-event-typing.json"))
    assert body["events"] == [{"eventType": "Typing", "typing": {"type": "On", "duration": 5000}}]


async def test_raw_outbound_webhook_is_signed_and_posted_verbatim(genesys: Genesys) -> None:
    raw = '{"id":"x","type":"Receipt"}'
    answer = await genesys.client.post(
        f"/_sandbox/integrations/{INTEGRATION['integration_id']}/webhooks/raw", json={"raw": raw}
    )
    assert answer.json()["webhook_status"] == 200
    (hit,) = genesys.receiver.posts()
    assert hit.body == raw.encode()
    digest = hmac.new(INTEGRATION["webhook_secret"].encode(), raw.encode(), hashlib.sha256).digest()
    assert hit.headers["x-hub-signature-256"] == "sha256=" + base64.b64encode(digest).decode()


# -- views, reset, addressing ---------------------------------------------------------------------------------------


async def test_views_filter_and_reset_forgets_traffic_but_keeps_integrations(genesys: Genesys) -> None:
    await genesys.post("message", message())
    await genesys.agent_says()
    assert len((await genesys.client.get("/_sandbox/sent", params={"to": "16505551234"})).json()) == 1
    assert (await genesys.client.get("/_sandbox/received", params={"integration_id": "other"})).json() == []
    await genesys.client.post("/_sandbox/reset")
    assert (await genesys.client.get("/_sandbox/received")).json() == []
    assert (await genesys.client.get("/_sandbox/sent")).json() == []
    assert (await genesys.post("message", message())).status_code == 200


async def test_unknown_path_is_a_genesys_404(genesys: Genesys) -> None:
    assert_genesys_error(await genesys.client.get("/api/v2/nothing"), 404, "not.found")


async def test_works_mounted_under_a_prefix() -> None:
    app = create_genesys_app(base_url="http://xypr.test/sandbox/genesys")
    parent = FastAPI()
    parent.mount("/sandbox/genesys", app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=parent), base_url="http://xypr.test") as client:
        await client.post("/sandbox/genesys/_sandbox/integrations", json=INTEGRATION)
        token = (
            await client.post(
                "/sandbox/genesys/oauth/token",
                data={"grant_type": "client_credentials"},
                headers=basic("client-a", "secret-a"),
            )
        ).json()["access_token"]
        answer = await client.post(
            f"/sandbox/genesys{INBOUND}/message", json=message(), headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
    await app.state.sandbox.aclose()
