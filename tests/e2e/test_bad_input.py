"""Bad input at the webhooks: a clear 4xx (or 503), nothing published, nothing lost, no crash."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import embedded_settings
from tests.support.bridge import Bridge, running_bridge
from xypr.config import Settings
from xypr.topology import INBOUND_WHATSAPP, OUTBOUND_GENESYS
from xypr.whatsapp import signature as meta_signature

CUSTOMER = "16505551234"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as running:
        yield running


def _text_webhook(phone_number_id: str, text: str = "hello") -> bytes:
    return orjson.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "X"}, "wa_id": CUSTOMER}],
            "messages": [{"from": CUSTOMER, "id": "wamid.bad-input", "timestamp": "1749416383", "type": "text",
                          "text": {"body": text}}],
        }}]}],
    })  # fmt: skip


async def _post_meta(bridge: Bridge, raw: bytes, header: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["X-Hub-Signature-256"] = header
    answer = await bridge.client.post("/webhook/whatsapp", content=raw, headers=headers)
    return answer.status_code, answer.json()


async def _metric(bridge: Bridge, line_start: str) -> float:
    text = (await bridge.client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_verification_answers_the_challenge_only_for_our_verify_token(bridge: Bridge) -> None:
    good = {"hub.mode": "subscribe", "hub.verify_token": bridge.demo["whatsapp"]["verify_token"],
            "hub.challenge": "1158201444"}  # fmt: skip
    answer = await bridge.client.get("/webhook/whatsapp", params=good)
    assert (answer.status_code, answer.text) == (200, "1158201444")

    wrong = await bridge.client.get("/webhook/whatsapp", params={**good, "hub.verify_token": "nope"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "forbidden"
    no_mode = await bridge.client.get("/webhook/whatsapp", params={**good, "hub.mode": "unsubscribe"})
    assert no_mode.status_code == 403


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("", 401), ("sha256=" + "0" * 64, 403), ("sha1=abc", 403), ("garbage", 403)],
)
async def test_meta_webhook_with_missing_or_wrong_signature_is_refused_and_publishes_nothing(
    bridge: Bridge, header: str | None, status: int
) -> None:
    raw = _text_webhook(bridge.demo["whatsapp"]["phone_number_id"])
    code, body = await _post_meta(bridge, raw, header)
    assert code == status
    assert "error" in body
    assert await bridge.runtime.broker.depth(INBOUND_WHATSAPP) == 0


async def test_meta_webhook_signed_with_another_secret_is_refused(bridge: Bridge) -> None:
    raw = _text_webhook(bridge.demo["whatsapp"]["phone_number_id"])
    code, _ = await _post_meta(bridge, raw, meta_signature.sign("someone-elses-secret", raw))
    assert code == 403
    assert await bridge.runtime.broker.depth(INBOUND_WHATSAPP) == 0


async def test_correctly_signed_meta_webhook_is_published_before_the_200(bridge: Bridge) -> None:
    raw = _text_webhook(bridge.demo["whatsapp"]["phone_number_id"])
    code, body = await _post_meta(bridge, raw, meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw))
    assert (code, body) == (200, {"status": "accepted", "events": 1})
    assert await bridge.runtime.broker.depth(INBOUND_WHATSAPP) == 1


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2", '{"object": "\u00e9"'.encode()])
async def test_malformed_json_is_400_on_both_webhooks(bridge: Bridge, raw: bytes) -> None:
    for path in ("/webhook/whatsapp", "/webhook/genesys"):
        answer = await bridge.client.post(path, content=raw, headers={"X-Hub-Signature-256": "sha256=x"})
        assert answer.status_code == 400, path
        assert answer.json()["error"]["code"] == "bad_request"


async def test_json_that_is_not_a_webhook_is_400(bridge: Bridge) -> None:
    for raw in (b"[]", b'{"object": "page", "entry": []}', b'{"entry": "x"}'):
        code, body = await _post_meta(bridge, raw, "sha256=x")
        assert code == 400, raw
        assert body["error"]["code"] == "bad_request"  # type: ignore[index]
    answer = await bridge.client.post(
        "/webhook/genesys", content=b'{"channel": {}}', headers={"X-Hub-Signature-256": "x"}
    )
    assert answer.status_code == 400
    unsigned = await bridge.client.post("/webhook/genesys", content=b'{"channel": {}}')
    assert unsigned.status_code == 401  # nothing is read before the signature is there


async def test_unknown_phone_number_id_is_404_logged_and_counted(bridge: Bridge) -> None:
    before = await _metric(bridge, 'xypr_webhook_requests_total{outcome="unknown_tenant",source="whatsapp"}')
    raw = _text_webhook("999999999999")
    code, body = await _post_meta(bridge, raw, meta_signature.sign("whatever", raw))
    assert code == 404
    assert body["error"]["code"] == "not_found"  # type: ignore[index]
    after = await _metric(bridge, 'xypr_webhook_requests_total{outcome="unknown_tenant",source="whatsapp"}')
    assert after == before + 1
    assert (await bridge.client.get("/health")).status_code == 200


async def test_unknown_genesys_integration_is_404_and_counted(bridge: Bridge) -> None:
    raw = orjson.dumps({"id": "x", "channel": {"id": "no-such-integration", "to": {"id": CUSTOMER}}, "type": "Text"})
    answer = await bridge.client.post("/webhook/genesys", content=raw, headers={"X-Hub-Signature-256": "sha256=x"})
    assert answer.status_code == 404
    assert await _metric(bridge, 'xypr_webhook_requests_total{outcome="unknown_tenant",source="genesys"}') >= 1


async def test_genesys_webhook_with_hex_instead_of_base64_signature_is_refused(bridge: Bridge) -> None:
    import hashlib
    import hmac

    integration = bridge.demo["genesys"]["integration_id"]
    raw = orjson.dumps({"id": "g1", "channel": {"id": integration, "to": {"id": CUSTOMER}}, "type": "Text",
                        "text": "hi"})  # fmt: skip
    hex_header = (
        "sha256=" + hmac.new(bridge.demo["genesys"]["webhook_secret"].encode(), raw, hashlib.sha256).hexdigest()
    )
    for header, status in ((hex_header, 403), (None, 401)):
        headers = {"X-Hub-Signature-256": header} if header else {}
        answer = await bridge.client.post("/webhook/genesys", content=raw, headers=headers)
        assert answer.status_code == status
    assert await bridge.runtime.broker.depth(OUTBOUND_GENESYS) == 0


async def test_oversize_body_is_413(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, max_webhook_body_bytes=4096)
    async with running_bridge(settings, workers=False) as bridge:
        raw = _text_webhook(bridge.demo["whatsapp"]["phone_number_id"], text="x" * 5000)
        code, body = await _post_meta(bridge, raw, meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw))
        assert code == 413
        assert body["error"]["code"] == "payload_too_large"  # type: ignore[index]


async def test_broker_unavailable_is_503_so_the_sender_retries(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings, workers=False) as bridge:
        await bridge.runtime.broker.close()
        raw = _text_webhook(bridge.demo["whatsapp"]["phone_number_id"])
        code, body = await _post_meta(bridge, raw, meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw))
        assert code == 503
        assert body["error"]["code"] == "service_unavailable"  # type: ignore[index]
        ready = await bridge.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"] is False
