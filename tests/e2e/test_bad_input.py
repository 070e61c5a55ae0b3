"""Bad input at the webhooks: a clear 4xx (or 503), nothing published, nothing lost, no crash."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import embedded_settings
from tests.support.bridge import Bridge, running_bridge
from xypr.config import Settings
from xypr.genesys import signature as genesys_signature
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


META_WRONG = "sha256=" + "0" * 64
GENESYS_WRONG = "sha256=" + "A" * 43 + "="


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2", '{"object": "\u00e9"'.encode()])
async def test_a_body_that_is_not_json_cannot_be_authenticated_on_either_webhook(bridge: Bridge, raw: bytes) -> None:
    for path, header in (("/webhook/whatsapp", META_WRONG), ("/webhook/genesys", GENESYS_WRONG)):
        answer = await bridge.client.post(path, content=raw, headers={"X-Hub-Signature-256": header})
        assert answer.status_code == 401, path
        assert answer.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"object":"whatsapp_business_account"}',
        b'{"object":"whatsapp_business_account","entry":[]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[]}]}',
        b'{"object":"whatsapp_business_account","entry":"x"}',
        b'{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":7}}}]}]}',
        b"[]",
        b"null",
    ],
)
async def test_no_meta_webhook_gets_200_without_a_signature_of_a_tenant(bridge: Bridge, raw: bytes) -> None:
    unsigned = await bridge.client.post("/webhook/whatsapp", content=raw)
    assert unsigned.status_code == 401
    # Signed with the tenant's own secret but naming no phone number: still nothing to verify it against.
    signed = await bridge.client.post(
        "/webhook/whatsapp",
        content=raw,
        headers={"X-Hub-Signature-256": meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw)},
    )
    assert signed.status_code == 401
    assert await bridge.runtime.broker.depth(INBOUND_WHATSAPP) == 0


@pytest.mark.parametrize("channel", ['"x"', "null", "[]", "{}", '{"id": 5}', '{"id": ""}', '{"id": ["a"]}'])
async def test_a_genesys_webhook_with_an_odd_channel_is_401_signed_or_not(bridge: Bridge, channel: str) -> None:
    raw = f'{{"id": "g1", "type": "Text", "text": "hi", "channel": {channel}}}'.encode()
    for headers in ({}, {"X-Hub-Signature-256": GENESYS_WRONG}):
        answer = await bridge.client.post("/webhook/genesys", content=raw, headers=headers)
        assert answer.status_code == 401, (channel, headers)
        assert answer.json()["error"]["code"] == "unauthorized"
    assert await bridge.runtime.broker.depth(OUTBOUND_GENESYS) == 0


async def test_a_signed_body_that_is_not_a_webhook_is_400(bridge: Bridge) -> None:
    number = bridge.demo["whatsapp"]["phone_number_id"]
    raw = orjson.dumps({"object": "page", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"metadata": {"phone_number_id": number}}}]}]})  # fmt: skip
    code, body = await _post_meta(bridge, raw, meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw))
    assert code == 400
    assert body["error"]["code"] == "bad_request"  # type: ignore[index]


def _nested(levels: int) -> object:
    document: object = "deep"
    for _ in range(levels):
        document = {"a": [document]} if levels % 2 else [document]
    return document


async def test_a_signed_webhook_nested_300_levels_deep_is_400_not_500(bridge: Bridge) -> None:
    number = bridge.demo["whatsapp"]["phone_number_id"]
    document = orjson.loads(_text_webhook(number))
    document["entry"][0]["changes"][0]["value"]["messages"][0]["text"] = {"body": "x", "extra": _nested(300)}
    raw = json.dumps(document).encode()  # orjson itself refuses to write more than 254 levels
    code, body = await _post_meta(bridge, raw, meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw))
    assert code == 400
    assert "deeper" in body["error"]["message"]  # type: ignore[index]
    assert await bridge.runtime.broker.depth(INBOUND_WHATSAPP) == 0

    integration = bridge.demo["genesys"]["integration_id"]
    raw = json.dumps({"id": "g-deep", "channel": {"id": integration, "to": {"id": CUSTOMER}}, "type": "Text",
                      "text": "hi", "content": [_nested(300)]}).encode()  # fmt: skip
    answer = await bridge.client.post(
        "/webhook/genesys",
        content=raw,
        headers={"X-Hub-Signature-256": genesys_signature.sign(bridge.demo["genesys"]["webhook_secret"], raw)},
    )
    assert answer.status_code == 400
    assert "deeper" in answer.json()["error"]["message"]
    assert await bridge.runtime.broker.depth(OUTBOUND_GENESYS) == 0
    assert (await bridge.client.get("/health")).status_code == 200


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
    answer = await bridge.client.post("/webhook/genesys", content=raw, headers={"X-Hub-Signature-256": GENESYS_WRONG})
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
        answer = await bridge.client.post(
            "/webhook/whatsapp",
            content=raw,
            headers={"X-Hub-Signature-256": meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw)},
        )
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "backend_unavailable"
        assert answer.headers["retry-after"] == "5"
        ready = await bridge.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"] is False


async def test_a_database_that_cannot_be_reached_is_503_with_retry_after(backend_settings: Settings) -> None:
    from xypr.backends.db.engine import create_database
    from xypr.tenants.service import TenantDirectory

    async with running_bridge(backend_settings, workers=False) as bridge:
        runtime = bridge.runtime
        # Nothing listens on port 1: every connection is refused, as while PostgreSQL restarts.
        dead = create_database("postgresql+asyncpg://postgres@127.0.0.1:1/gone", pool_size=1)
        healthy = runtime.tenants
        runtime.tenants = TenantDirectory(dead, runtime.box)
        try:
            raw = _text_webhook(bridge.demo["whatsapp"]["phone_number_id"])
            code, body = await _post_meta(bridge, raw, meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw))
            assert code == 503
            assert body["error"]["code"] == "backend_unavailable"  # type: ignore[index]
            answer = await bridge.client.post(
                "/webhook/genesys",
                content=b'{"id":"g1","channel":{"id":"i1","to":{"id":"1"}},"type":"Text","text":"x"}',
                headers={"X-Hub-Signature-256": GENESYS_WRONG},
            )
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "5"
        finally:
            runtime.tenants = healthy
            await dead.close()
        # Back again: the same webhook goes through.
        code, _ = await _post_meta(bridge, raw, meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw))
        assert code == 200


@pytest.mark.services
async def test_pooled_connections_closed_by_a_postgresql_restart_are_503_not_500(tmp_path: Path) -> None:
    """The fault run's case: the first lookups after PostgreSQL came back hit closed pooled connections."""
    import asyncpg

    from tests.conftest import POSTGRES_ADMIN, embedded_settings

    admin = await asyncpg.connect(POSTGRES_ADMIN.replace("postgresql+asyncpg://", "postgresql://"))
    name = f"xypr_test_{tmp_path.name[-12:].replace('-', '_').lower()}_503"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        settings = embedded_settings(tmp_path, database_url=f"postgresql+asyncpg://{base}/{name}")
        async with running_bridge(settings, workers=False) as bridge:
            numbers = iter(range(100))

            async def lookup() -> int:
                raw = _text_webhook(f"9999{next(numbers)}")  # an unknown number: always a database lookup
                code, _ = await _post_meta(bridge, raw, meta_signature.sign("x", raw))
                return code

            assert await lookup() == 404  # the pool now holds a live connection
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            codes = [await lookup() for _ in range(3)]
            assert codes[0] == 503, codes  # the closed connection: unavailable, retry
            assert codes[-1] == 404, codes  # the pool replaced it
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_an_api_call_while_the_database_is_unreachable_is_503_with_retry_after(tmp_path: Path) -> None:
    from tests.support.auth import login_as
    from xypr.auth.principal import Role
    from xypr.backends.db.engine import create_database

    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        admin = await login_as(bridge, Role.XYPR_ADMIN)
        runtime = bridge.runtime
        healthy, runtime.database = runtime.database, create_database("postgresql+asyncpg://postgres@127.0.0.1:1/gone")
        try:
            answer = await bridge.client.get("/tenants", headers=admin)
            assert answer.status_code == 503
            assert answer.json()["error"]["code"] == "backend_unavailable"
            assert answer.headers["retry-after"] == "5"
        finally:
            dead, runtime.database = runtime.database, healthy
            await dead.close()
        assert (await bridge.client.get("/tenants", headers=admin)).status_code == 200
