"""The emulated Meta Graph API follows the published contracts: sends, limits, statuses, window, faults, media."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.sandbox.payload_shapes import covers, shape
from tests.sandbox.webhook_receiver import WebhookReceiver, eventually, serve
from tests.support.contracts import CONTRACTS, contract
from tests.support.moto import free_port
from xypr.sandbox.meta import MetaSandbox, create_meta_app

NUMBER = {
    "phone_number_id": "106540352242922",
    "display_phone_number": "15550783881",
    "waba_id": "419561257915477",
    "access_token": "EAAG-sandbox-token",
    "app_secret": "meta-app-secret",
    "verify_token": "verify-me",
    "webhook_url": "http://xypr.test/webhook/whatsapp",
}
CUSTOMER = "16505551234"
AUTH = {"Authorization": f"Bearer {NUMBER['access_token']}"}
MESSAGES = f"/v23.0/{NUMBER['phone_number_id']}/messages"


@dataclass
class Meta:
    """The emulator, a client on it, and the webhook receiver standing in for Xypr."""

    client: httpx.AsyncClient
    sandbox: MetaSandbox
    receiver: WebhookReceiver

    async def send(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(MESSAGES, json=body, headers=AUTH if headers is None else headers)

    async def customer_says(self, text: str = "hello", wa_id: str = CUSTOMER, **extra: Any) -> dict[str, Any]:
        answer = await self.client.post(
            f"/_sandbox/customers/{wa_id}/messages",
            json={"phone_number_id": NUMBER["phone_number_id"], "text": text, "name": "Sheena Nelson", **extra},
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def webhook_bodies(self) -> list[dict[str, Any]]:
        return [hit.json() for hit in self.receiver.posts()]

    def statuses(self) -> list[dict[str, Any]]:
        return [
            status
            for body in self.webhook_bodies()
            for status in body["entry"][0]["changes"][0]["value"].get("statuses", [])
        ]


@pytest.fixture
async def meta() -> AsyncIterator[Meta]:
    receiver = WebhookReceiver()
    async with receiver.client() as webhooks:
        app = create_meta_app(
            base_url="http://meta.test", http_client=webhooks, status_delay=0.005, webhook_backoff=0.01
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://meta.test") as client:
            registered = await client.post("/_sandbox/numbers", json=NUMBER)
            assert registered.status_code == 200
            yield Meta(client, app.state.sandbox, receiver)
            await app.state.sandbox.aclose()


def text(body: str = "Hi there", to: str = CUSTOMER, **extra: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}, **extra}


def hex_signature(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


# -- registration -----------------------------------------------------------------------------------


async def test_registration_with_verify_performs_the_challenge_handshake(meta: Meta) -> None:
    answer = await meta.client.post("/_sandbox/numbers", json={**NUMBER, "verify": True})
    assert answer.json()["verification"] == {"ok": True, "status": 200, "error": None}
    (get,) = [hit for hit in meta.receiver.hits if hit.method == "GET"]
    assert get.query["hub.mode"] == "subscribe"
    assert get.query["hub.verify_token"] == "verify-me"
    assert get.query["hub.challenge"].isdigit()


async def test_registration_verify_reports_a_refused_handshake(meta: Meta) -> None:
    answer = await meta.client.post("/_sandbox/numbers", json={**NUMBER, "verify_token": "wrong", "verify": True})
    assert answer.json()["verification"]["ok"] is False
    assert answer.json()["verification"]["status"] == 403


# -- tokens ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
async def test_send_without_the_numbers_token_is_401_code_190(meta: Meta, headers: dict[str, str]) -> None:
    answer = await meta.send(text(), headers=headers)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["code"] == 190
    assert error["type"] == "OAuthException"
    assert error["fbtrace_id"]
    assert not meta.sandbox.sent


async def test_send_to_an_unknown_number_with_a_valid_token_is_code_100_subcode_33(meta: Meta) -> None:
    answer = await meta.client.post("/v23.0/999/messages", json=text(), headers=AUTH)
    assert answer.status_code == 400
    assert (answer.json()["error"]["code"], answer.json()["error"]["error_subcode"]) == (100, 33)


async def test_access_token_query_parameter_is_accepted_like_graph(meta: Meta) -> None:
    await meta.customer_says()
    answer = await meta.client.post(MESSAGES + f"?access_token={NUMBER['access_token']}", json=text())
    assert answer.status_code == 200


# -- accepted sends -------------------------------------------------------------------------------------


async def test_accepted_send_answers_like_the_send_message_response_contract(meta: Meta) -> None:
    await meta.customer_says()
    answer = await meta.send(text(to="+1 (650) 555-1234"))
    assert answer.status_code == 200
    body = answer.json()
    assert shape(body) == shape(contract("meta/send-message-response.json"))
    assert body["contacts"] == [{"input": "+1 (650) 555-1234", "wa_id": CUSTOMER}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    base64.b64decode(wamid.removeprefix("wamid."), validate=True)
    (sent,) = (await meta.client.get("/_sandbox/sent", params={"to": CUSTOMER})).json()
    assert (sent["wamid"], sent["phone_number_id"], sent["to"]) == (
        wamid,
        NUMBER["phone_number_id"],
        "+1 (650) 555-1234",
    )
    assert sent["body"]["text"]["body"] == "Hi there"
    assert isinstance(sent["timestamp"], int)


async def test_template_send_answers_message_status_accepted(meta: Meta) -> None:
    answer = await meta.send(contract("meta/send-template-hello-world-request.json") | {"to": CUSTOMER})
    assert answer.json()["messages"][0]["message_status"] == "accepted"


async def test_send_to_a_bsuid_recipient_answers_like_the_bsuid_contract(meta: Meta) -> None:
    bsuid = "US.13491208655302741918"
    body = {"messaging_product": "whatsapp", "recipient": bsuid, "type": "text", "text": {"body": "hi"}}
    answer = await meta.send(body)
    assert shape(answer.json()) == shape(contract("meta/send-response-bsuid-recipient.json"))
    assert answer.json()["contacts"] == [{"input": bsuid, "user_id": bsuid}]


def _contract_send_requests() -> list[str]:
    return sorted(p.name for p in (CONTRACTS / "meta").glob("send-*-request.json"))


@pytest.mark.parametrize("name", _contract_send_requests())
async def test_every_published_send_request_example_is_accepted(meta: Meta, name: str) -> None:
    body = orjson.loads((CONTRACTS / "meta" / name).read_bytes().replace(b"{{Recipient-Phone-Number}}", b"16505551234"))
    answer = await meta.send(body)
    assert answer.status_code == 200, answer.text


async def test_mark_as_read_with_typing_indicator_answers_success_and_is_recorded(meta: Meta) -> None:
    inbound = await meta.customer_says()
    body = contract("meta/send-mark-read-typing-indicator-request.json") | {"message_id": inbound["wamid"]}
    answer = await meta.send(body)
    assert answer.json() == contract("meta/send-mark-read-typing-indicator-response.json")
    (receipt,) = (await meta.client.get("/_sandbox/read_receipts")).json()
    assert (receipt["message_id"], receipt["typing_indicator"]) == (inbound["wamid"], True)
    assert (await meta.client.get("/_sandbox/sent")).json() == []


# -- validation -----------------------------------------------------------------------------------------


def _buttons(count: int, title_length: int = 5) -> dict[str, Any]:
    buttons = [{"type": "reply", "reply": {"id": f"b{i}", "title": f"{i}" * title_length}} for i in range(count)]
    return {"type": "button", "body": {"text": "Pick one"}, "action": {"buttons": buttons}}


def _list(rows: int, title_length: int = 5) -> dict[str, Any]:
    items = [{"id": f"r{i}", "title": "r" * title_length} for i in range(rows)]
    return {"type": "list", "body": {"text": "Choose"}, "action": {"button": "Options", "sections": [{"rows": items}]}}


def _interactive(interactive: dict[str, Any]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "interactive", "interactive": interactive}


def _media(kind: str, **media: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": CUSTOMER, "type": kind, kind: media}


INVALID_SENDS: dict[str, tuple[dict[str, Any], str]] = {
    "no messaging_product": ({"to": CUSTOMER, "type": "text", "text": {"body": "x"}}, "messaging_product"),
    "wrong messaging_product": (text() | {"messaging_product": "sms"}, "messaging_product"),
    "no recipient": ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, "to"),
    "unknown type": (text() | {"type": "hologram", "hologram": {}}, "type"),
    "type object missing": ({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image"}, "image"),
    "text without body": (text() | {"text": {"preview_url": True}}, "text['body']"),
    "text over 4096": (text("x" * 4097), "4096"),
    "preview_url not bool": (text() | {"text": {"body": "x", "preview_url": "yes"}}, "preview_url"),
    "image with id and link": (_media("image", id="1", link="https://x/y.jpg"), "Exactly one"),
    "image with neither": (_media("image", caption="c"), "Exactly one"),
    "caption over 1024": (_media("image", id="1", caption="c" * 1025), "1024"),
    "audio with caption": (_media("audio", id="1", caption="no"), "caption"),
    "sticker with caption": (_media("sticker", id="1", caption="no"), "caption"),
    "four reply buttons": (_interactive(_buttons(4)), "at most 3"),
    "button title over 20": (_interactive(_buttons(2, title_length=21)), "20"),
    "duplicate button titles": (
        _interactive(
            {
                "type": "button",
                "body": {"text": "?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "a", "title": "Same"}},
                        {"type": "reply", "reply": {"id": "b", "title": "Same"}},
                    ]
                },
            }
        ),
        "unique",
    ),
    "list with 11 rows": (_interactive(_list(11)), "at most 10"),
    "list row title over 24": (_interactive(_list(2, title_length=25)), "24"),
    "interactive without body": (_interactive({"type": "button", "action": _buttons(1)["action"]}), "body"),
    "unknown interactive type": (_interactive({"type": "carousel_x", "action": {}}), "interactive['type']"),
    "template without name": (
        {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "template", "template": {"language": {"code": "en"}}},
        "template['name']",
    ),
    "template without language code": (
        {
            "messaging_product": "whatsapp",
            "to": CUSTOMER,
            "type": "template",
            "template": {"name": "x", "language": {}},
        },
        "code",
    ),
    "reaction without message_id": (
        {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "reaction", "reaction": {"emoji": "x"}},
        "message_id",
    ),
    "location without latitude": (
        {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "location", "location": {"longitude": 1.0}},
        "latitude",
    ),
    "contacts empty": (
        {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "contacts", "contacts": []},
        "contacts",
    ),
    "mark read without message_id": ({"messaging_product": "whatsapp", "status": "read"}, "message_id"),
    "callback data over 512": (text(biz_opaque_callback_data="x" * 513), "512"),
}


@pytest.mark.parametrize("case", INVALID_SENDS)
async def test_invalid_send_is_400_code_100_naming_the_problem(meta: Meta, case: str) -> None:
    body, detail = INVALID_SENDS[case]
    answer = await meta.send(body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert shape(answer.json()) == shape(contract("meta/error-100-invalid-parameter-mm-api.json"))
    assert (error["code"], error["message"]) == (100, "(#100) Invalid parameter")
    assert detail in error["error_data"]["details"]
    assert (await meta.client.get("/_sandbox/sent")).json() == []


@pytest.mark.parametrize(
    "body",
    [
        text("x" * 4096),
        _media("image", id="1", caption="c" * 1024),
        _interactive(_buttons(3, title_length=20)),
        _interactive(_list(10, title_length=24)),
    ],
    ids=["text 4096", "caption 1024", "3 buttons of 20", "10 rows of 24"],
)
async def test_sends_at_the_limits_are_accepted(meta: Meta, body: dict[str, Any]) -> None:
    assert (await meta.send(body)).status_code == 200


async def test_malformed_json_is_400_code_100(meta: Meta) -> None:
    answer = await meta.client.post(MESSAGES, content=b"{not json", headers=AUTH)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, 100)


# -- status webhooks -------------------------------------------------------------------------------------


async def test_status_webhooks_follow_in_order_signed_with_hex_hmac_and_echo_callback_data(meta: Meta) -> None:
    await meta.customer_says()
    wamid = (await meta.send(text(biz_opaque_callback_data="ticket-42"))).json()["messages"][0]["id"]
    assert await meta.sandbox.wait_idle(within=5)

    hits = meta.receiver.posts()[1:]  # the first one is the customer's message
    assert [hit.json()["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] for hit in hits] == [
        "sent",
        "delivered",
        "read",
    ]
    for hit in hits:
        assert hit.headers["x-hub-signature-256"] == hex_signature(NUMBER["app_secret"], hit.body)
        status = hit.json()["entry"][0]["changes"][0]["value"]["statuses"][0]
        assert (status["id"], status["recipient_id"]) == (wamid, CUSTOMER)
        assert status["timestamp"].isdigit()
        assert status["biz_opaque_callback_data"] == "ticket-42"
    sent, delivered, _read = (hit.json() for hit in hits)
    assert covers(sent, contract("meta/webhook-status-sent.json")) == []
    assert covers(delivered, contract("meta/webhook-status-delivered.json")) == []
    recorded = (await meta.client.get("/_sandbox/statuses", params={"wamid": wamid})).json()
    assert [(r["status"], r["webhook_status"]) for r in recorded] == [("sent", 200), ("delivered", 200), ("read", 200)]
    assert (await meta.client.get("/_sandbox/sent")).json()[0]["status"] == "read"


async def test_a_failed_status_delivery_is_retried_with_backoff(meta: Meta) -> None:
    await meta.customer_says()
    meta.receiver.failures = [500, 503]
    await meta.send(text())
    assert await meta.sandbox.wait_idle(within=5)
    first = (await meta.client.get("/_sandbox/statuses")).json()[0]
    assert (first["status"], first["webhook_status"], first["attempts"]) == ("sent", 200, 3)


async def test_webhook_v24_status_has_no_conversation_object(meta: Meta) -> None:
    await meta.client.post("/_sandbox/numbers", json={**NUMBER, "webhook_version": "v24.0"})
    await meta.customer_says()
    await meta.send(text())
    assert await meta.sandbox.wait_idle(within=5)
    assert all("conversation" not in status for status in meta.statuses())


# -- the 24 h window ------------------------------------------------------------------------------------------


def _failed_131047(status: dict[str, Any]) -> bool:
    return bool(status["status"] == "failed" and status["errors"][0]["code"] == 131047)


async def test_non_template_to_a_customer_who_never_wrote_is_accepted_then_fails_131047(meta: Meta) -> None:
    answer = await meta.send(text())
    assert answer.status_code == 200
    assert await meta.sandbox.wait_idle(within=5)
    (status,) = meta.statuses()
    assert _failed_131047(status)
    error = status["errors"][0]
    assert error["title"] == "Re-engagement message"
    assert error["error_data"]["details"] == (
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
    )
    assert covers(meta.webhook_bodies()[0], contract("meta/webhook-status-failed.json")) == []


async def test_templates_may_be_sent_outside_the_window(meta: Meta) -> None:
    await meta.send(contract("meta/send-template-hello-world-request.json") | {"to": CUSTOMER})
    assert await meta.sandbox.wait_idle(within=5)
    assert [s["status"] for s in meta.statuses()] == ["sent", "delivered", "read"]
    assert meta.statuses()[0]["pricing"]["category"] == "utility"


async def test_the_window_closes_24_hours_after_the_customers_last_message(meta: Meta) -> None:
    await meta.customer_says()
    await meta.client.post("/_sandbox/clock", json={"offset_seconds": 23 * 3600})
    await meta.send(text("still open"))
    assert await meta.sandbox.wait_idle(within=5)
    assert [s["status"] for s in meta.statuses()] == ["sent", "delivered", "read"]

    await meta.client.post("/_sandbox/clock", json={"advance_seconds": 2 * 3600})
    await meta.send(text("too late"))
    assert await meta.sandbox.wait_idle(within=5)
    assert _failed_131047(meta.statuses()[-1])

    await meta.customer_says("I'm back")
    await meta.send(text("welcome back"))
    assert await meta.sandbox.wait_idle(within=5)
    assert meta.statuses()[-1]["status"] == "read"


# -- fault injection ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status", "example"),
    [
        (130429, 400, "error-130429-rate-limit.json"),
        (190, 401, "error-190-expired-token.json"),
        (2, 500, "error-2-internal.json"),
        (4, 400, "error-4-app-rate-limit.json"),
        (80007, 400, "error-80007-business-rate-limit.json"),
        (131056, 400, None),
        (131047, 400, None),
        (131026, 400, None),
        (131053, 400, None),
        (131000, 500, None),
    ],
)
async def test_injected_fault_answers_the_documented_error_for_the_next_sends(
    meta: Meta, code: int, http_status: int, example: str | None
) -> None:
    await meta.customer_says()
    await meta.client.post(
        "/_sandbox/faults", json={"phone_number_id": NUMBER["phone_number_id"], "code": code, "count": 2}
    )
    for _ in range(2):
        answer = await meta.send(text())
        assert (answer.status_code, answer.json()["error"]["code"]) == (http_status, code)
        if example:
            assert shape(answer.json()) == shape(contract(f"meta/{example}"))
    assert (await meta.client.get("/_sandbox/sent")).json() == []
    assert (await meta.send(text())).status_code == 200


async def test_injected_fault_http_status_can_be_overridden(meta: Meta) -> None:
    await meta.client.post(
        "/_sandbox/faults", json={"phone_number_id": NUMBER["phone_number_id"], "code": 4, "http_status": 429}
    )
    assert (await meta.send(text())).status_code == 429


async def test_injected_status_mode_fault_accepts_then_sends_a_failed_status(meta: Meta) -> None:
    await meta.customer_says()
    fault = {"phone_number_id": NUMBER["phone_number_id"], "code": 131026, "mode": "status"}
    await meta.client.post("/_sandbox/faults", json=fault)
    assert (await meta.send(text())).status_code == 200
    assert await meta.sandbox.wait_idle(within=5)
    (status,) = meta.statuses()
    assert (status["status"], status["errors"][0]["code"]) == ("failed", 131026)


async def test_mark_as_read_does_not_consume_a_fault(meta: Meta) -> None:
    inbound = await meta.customer_says()
    await meta.client.post("/_sandbox/faults", json={"phone_number_id": NUMBER["phone_number_id"], "code": 130429})
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": inbound["wamid"]}
    assert (await meta.send(read)).status_code == 200
    assert (await meta.send(text())).json()["error"]["code"] == 130429


# -- customer simulation --------------------------------------------------------------------------------------


async def test_customer_message_is_a_signed_webhook_shaped_like_webhook_text(meta: Meta) -> None:
    result = await meta.customer_says("Does it come in another color?")
    assert (result["webhook_status"], result["attempts"]) == (200, 1)
    (hit,) = meta.receiver.posts()
    assert hit.headers["x-hub-signature-256"] == hex_signature(NUMBER["app_secret"], hit.body)
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["x-hub-signature"] == "sha1=" + hmac.new(b"meta-app-secret", hit.body, hashlib.sha1).hexdigest()
    body = hit.json()
    assert shape(body) == shape(contract("meta/webhook-text.json"))
    value = body["entry"][0]["changes"][0]["value"]
    assert body["entry"][0]["id"] == NUMBER["waba_id"]
    assert value["metadata"] == {"display_phone_number": "15550783881", "phone_number_id": NUMBER["phone_number_id"]}
    assert value["contacts"] == [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}]
    message = value["messages"][0]
    assert (message["from"], message["id"], message["text"]) == (
        CUSTOMER,
        result["wamid"],
        {"body": "Does it come in another color?"},
    )
    (recorded,) = (await meta.client.get("/_sandbox/inbound", params={"wa_id": CUSTOMER})).json()
    assert recorded["wamid"] == result["wamid"]


async def test_customer_webhook_body_escapes_non_ascii_and_signs_the_raw_bytes(meta: Meta) -> None:
    await meta.customer_says("Olá 😀")
    (hit,) = meta.receiver.posts()
    assert b"\\u00e1" in hit.body
    assert hit.json()["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] == "Olá 😀"
    assert hit.headers["x-hub-signature-256"] == hex_signature(NUMBER["app_secret"], hit.body)


async def test_customer_reply_context_is_carried(meta: Meta) -> None:
    await meta.customer_says("this one", context_id="wamid.ABC")
    message = meta.webhook_bodies()[0]["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["context"] == {"from": NUMBER["display_phone_number"], "id": "wamid.ABC"}


async def test_customer_webhook_is_retried_a_bounded_number_of_times(meta: Meta) -> None:
    meta.receiver.failures = [503]
    assert (await meta.customer_says())["attempts"] == 2
    meta.receiver.always = 500
    result = await meta.customer_says()
    assert (result["webhook_status"], result["attempts"]) == (500, 3)


async def test_customer_webhook_to_an_unreachable_url_reports_no_status() -> None:
    app = create_meta_app(base_url="http://meta.test", webhook_backoff=0.01)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://meta.test") as client:
        await client.post("/_sandbox/numbers", json={**NUMBER, "webhook_url": f"http://127.0.0.1:{free_port()}/wh"})
        answer = await client.post(
            f"/_sandbox/customers/{CUSTOMER}/messages",
            json={"phone_number_id": NUMBER["phone_number_id"], "text": "hi"},
        )
        assert (answer.json()["webhook_status"], answer.json()["attempts"]) == (None, 3)
        assert answer.json()["wamid"].startswith("wamid.")
    await app.state.sandbox.aclose()


async def test_customer_with_username_only_uses_bsuid_fields(meta: Meta) -> None:
    bsuid = "US.13491208655302741918"
    await meta.customer_says(user_id=bsuid, username="sheena", hide_phone=True)
    value = meta.webhook_bodies()[0]["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Sheena Nelson", "username": "sheena"}, "user_id": bsuid}]
    assert "from" not in value["messages"][0]
    assert value["messages"][0]["from_user_id"] == bsuid
    body = {"messaging_product": "whatsapp", "recipient": bsuid, "type": "text", "text": {"body": "hi"}}
    await meta.send(body)
    assert await meta.sandbox.wait_idle(within=5)
    assert meta.statuses()[0]["status"] == "sent"
    assert meta.statuses()[0]["recipient_user_id"] == bsuid


async def test_raw_webhook_is_signed_and_posted_verbatim(meta: Meta) -> None:
    raw = '{"object":"whatsapp_business_account","entry":[]}'
    answer = await meta.client.post(
        "/_sandbox/webhooks/raw", json={"phone_number_id": NUMBER["phone_number_id"], "raw": raw}
    )
    assert answer.json()["webhook_status"] == 200
    (hit,) = meta.receiver.posts()
    assert hit.body == raw.encode()
    assert hit.headers["x-hub-signature-256"] == hex_signature(NUMBER["app_secret"], raw.encode())


# -- media ------------------------------------------------------------------------------------------------------


async def _upload(
    meta: Meta, content: bytes, mime: str = "image/jpeg", headers: dict[str, str] | None = None
) -> httpx.Response:
    return await meta.client.post(
        f"/v23.0/{NUMBER['phone_number_id']}/media",
        data={"messaging_product": "whatsapp", "type": mime},
        files={"file": ("photo.jpg", content, mime)},
        headers=AUTH if headers is None else headers,
    )


async def test_media_upload_get_url_download_and_delete(meta: Meta) -> None:
    content = os.urandom(200_000)
    uploaded = await _upload(meta, content)
    assert shape(uploaded.json()) == shape(contract("meta/media-upload-response.json"))
    media_id = uploaded.json()["id"]

    info = (await meta.client.get(f"/v23.0/{media_id}", headers=AUTH)).json()
    assert shape(info) == shape(contract("meta/media-get-url-response.json"))
    assert (info["id"], info["mime_type"], info["file_size"]) == (media_id, "image/jpeg", str(len(content)))
    assert info["sha256"] == hashlib.sha256(content).hexdigest()
    assert info["url"].startswith(f"http://meta.test/_media/{media_id}?expires=")

    downloaded = await meta.client.get(info["url"], headers=AUTH)
    assert (downloaded.status_code, downloaded.content) == (200, content)
    assert downloaded.headers["content-type"] == "image/jpeg"
    assert (await meta.client.get(info["url"])).status_code == 401
    assert (await meta.client.get(info["url"], headers={"Authorization": "Bearer other"})).status_code == 401
    assert (await meta.client.get(info["url"].replace("hash=", "hash=0"), headers=AUTH)).status_code == 404

    deleted = await meta.client.delete(f"/v23.0/{media_id}", headers=AUTH)
    assert deleted.json() == contract("meta/media-delete-response.json")
    assert (await meta.client.get(f"/v23.0/{media_id}", headers=AUTH)).json()["error"]["code"] == 100


async def test_media_url_expires_after_five_minutes(meta: Meta) -> None:
    media_id = (await _upload(meta, b"\xff\xd8jpeg")).json()["id"]
    url = (await meta.client.get(f"/v23.0/{media_id}", headers=AUTH)).json()["url"]
    await meta.client.post("/_sandbox/clock", json={"advance_seconds": 301})
    assert (await meta.client.get(url, headers=AUTH)).status_code == 404


@pytest.mark.parametrize(
    ("content", "mime"),
    [(b"x" * (5 * 1024 * 1024 + 1), "image/jpeg"), (b"GIF89a", "image/gif"), (b"", "image/png")],
    ids=["image over 5 MB", "unsupported type", "empty file"],
)
async def test_media_upload_outside_the_limits_is_131053(meta: Meta, content: bytes, mime: str) -> None:
    answer = await _upload(meta, content, mime)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, 131053)


async def test_media_upload_needs_the_numbers_token(meta: Meta) -> None:
    answer = await _upload(meta, b"jpeg", headers={"Authorization": "Bearer nope"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, 190)


async def test_customer_image_message_is_shaped_like_webhook_image_and_downloadable(meta: Meta) -> None:
    content = os.urandom(1000)
    created = await meta.client.post(
        "/_sandbox/media",
        json={
            "phone_number_id": NUMBER["phone_number_id"],
            "data_base64": base64.b64encode(content).decode(),
            "mime_type": "image/jpeg",
        },
    )
    media_id = created.json()["id"]
    await meta.customer_says(type="image", media_id=media_id, caption="Taj Mahal")
    body = meta.webhook_bodies()[0]
    assert shape(body) == shape(contract("meta/webhook-image.json"))
    image = body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]
    assert image == {
        "caption": "Taj Mahal",
        "mime_type": "image/jpeg",
        "sha256": base64.b64encode(hashlib.sha256(content).digest()).decode(),
        "id": media_id,
    }
    url = (await meta.client.get(f"/v23.0/{media_id}", headers=AUTH)).json()["url"]
    assert (await meta.client.get(url, headers=AUTH)).content == content


async def test_customer_media_can_be_created_from_a_multipart_form(meta: Meta) -> None:
    created = await meta.client.post(
        "/_sandbox/media",
        data={"phone_number_id": NUMBER["phone_number_id"]},
        files={"file": ("note.ogg", b"OggS...", "audio/ogg")},
    )
    assert created.json()["mime_type"] == "audio/ogg"


async def test_the_sandbox_page_reads_media_bytes_without_token_images_inline_other_types_as_downloads(
    meta: Meta,
) -> None:
    image = await meta.client.post(
        "/_sandbox/media",
        data={"phone_number_id": NUMBER["phone_number_id"]},
        files={"file": ("photo.png", b"\x89PNG-bytes", "image/png")},
    )
    page = await meta.client.post(
        "/_sandbox/media",
        data={"phone_number_id": NUMBER["phone_number_id"]},
        files={"file": ("<evil>.html", b"<script>alert(1)</script>", "text/html")},
    )

    shown = await meta.client.get(f"/_sandbox/media/{image.json()['id']}")
    downloaded = await meta.client.get(f"/_sandbox/media/{page.json()['id']}")

    assert (shown.status_code, shown.content, shown.headers["content-type"]) == (200, b"\x89PNG-bytes", "image/png")
    assert shown.headers["content-disposition"] == 'inline; filename="photo.png"'
    assert downloaded.headers["content-type"] == "application/octet-stream"
    assert downloaded.headers["content-disposition"] == 'attachment; filename="_evil_.html"'
    assert "sandbox" in downloaded.headers["content-security-policy"]
    assert (await meta.client.get("/_sandbox/media/404404")).status_code == 404


async def test_a_customer_can_tap_a_template_quick_reply_button(meta: Meta) -> None:
    sent = await meta.customer_says(
        type="button", content={"payload": "Track my order", "text": "Track my order"}, context_id="wamid.T"
    )

    (body,) = meta.webhook_bodies()
    (message,) = body["entry"][0]["changes"][0]["value"]["messages"]
    assert (message["id"], message["type"]) == (sent["wamid"], "button")
    assert message["button"] == {"payload": "Track my order", "text": "Track my order"}
    assert message["context"]["id"] == "wamid.T"


async def test_sends_and_customer_messages_carry_one_increasing_sequence(meta: Meta) -> None:
    await meta.customer_says("first")
    await meta.send(text())
    await meta.customer_says("third")

    inbound = (await meta.client.get("/_sandbox/inbound")).json()
    (sent,) = (await meta.client.get("/_sandbox/sent")).json()
    assert inbound[0]["sequence"] < sent["sequence"] < inbound[1]["sequence"]


# -- addressing, versions, templates -----------------------------------------------------------------------------


async def test_works_mounted_under_a_prefix_with_media_urls_on_the_base_url(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    async with receiver.client() as webhooks:
        meta_app = create_meta_app(base_url="http://xypr.test/sandbox/meta", http_client=webhooks)
        parent = FastAPI()
        parent.mount("/sandbox/meta", meta_app)
        transport = httpx.ASGITransport(app=parent)
        async with httpx.AsyncClient(transport=transport, base_url="http://xypr.test") as client:
            await client.post("/sandbox/meta/_sandbox/numbers", json=NUMBER)
            uploaded = await client.post(
                f"/sandbox/meta/v24.0/{NUMBER['phone_number_id']}/media",
                data={"messaging_product": "whatsapp", "type": "image/png"},
                files={"file": ("a.png", b"\x89PNG", "image/png")},
                headers=AUTH,
            )
            url = (await client.get(f"/sandbox/meta/v24.0/{uploaded.json()['id']}", headers=AUTH)).json()["url"]
            assert url.startswith("http://xypr.test/sandbox/meta/_media/")
            assert (await client.get(url, headers=AUTH)).content == b"\x89PNG"
        await meta_app.state.sandbox.aclose()


async def test_unknown_paths_and_refused_versions_answer_graph_errors() -> None:
    app = create_meta_app(base_url="http://meta.test", api_versions=("v23.0",))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://meta.test") as client:
        await client.post("/_sandbox/numbers", json=NUMBER)
        assert (await client.get("/a/b/c/d")).json()["error"]["code"] == 2500
        old = await client.post(f"/v19.0/{NUMBER['phone_number_id']}/messages", json=text(), headers=AUTH)
        assert old.json()["error"]["code"] == 2635
    await app.state.sandbox.aclose()


async def test_phone_number_and_templates_can_be_read(meta: Meta) -> None:
    number = (await meta.client.get(f"/v23.0/{NUMBER['phone_number_id']}", headers=AUTH)).json()
    assert (number["id"], number["display_phone_number"]) == (NUMBER["phone_number_id"], "15550783881")
    await meta.client.post(
        "/_sandbox/templates", json={"waba_id": NUMBER["waba_id"], "name": "order_update", "category": "UTILITY"}
    )
    templates = (await meta.client.get(f"/v23.0/{NUMBER['waba_id']}/message_templates", headers=AUTH)).json()
    assert {t["name"] for t in templates["data"]} == {"hello_world", "order_update"}
    listed = (await meta.client.get("/_sandbox/templates", params={"waba_id": NUMBER["waba_id"]})).json()
    assert listed == templates["data"]
    assert (await meta.client.get("/_sandbox/templates", params={"waba_id": "unknown"})).json() == []


async def test_reset_forgets_traffic_but_keeps_numbers(meta: Meta) -> None:
    await meta.customer_says()
    await meta.client.post("/_sandbox/faults", json={"phone_number_id": NUMBER["phone_number_id"], "code": 2})
    await meta.client.post("/_sandbox/reset")
    assert (await meta.client.get("/_sandbox/inbound")).json() == []
    assert (await meta.send(text())).status_code == 200  # fault gone; number still registered
    assert await meta.sandbox.wait_idle(within=5)
    assert _failed_131047(meta.statuses()[-1])  # the window was forgotten too


async def test_default_http_client_delivers_to_a_real_socket() -> None:
    receiver = WebhookReceiver()
    async with serve(receiver.app) as url:
        app = create_meta_app(base_url="http://meta.test", status_delay=0.005)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://meta.test") as client:
            await client.post("/_sandbox/numbers", json={**NUMBER, "webhook_url": f"{url}/webhook", "verify": True})
            answer = await client.post(
                f"/_sandbox/customers/{CUSTOMER}/messages",
                json={"phone_number_id": NUMBER["phone_number_id"], "text": "hi"},
            )
            assert answer.json()["webhook_status"] == 200
            await client.post(MESSAGES, json=text(), headers=AUTH)

            async def all_statuses_arrived() -> bool:
                return len(receiver.posts()) == 4  # the customer's message, then sent, delivered, read

            await eventually(all_statuses_arrived)
        await app.state.sandbox.aclose()
