"""Operations basics: JSON logs bound to ids and free of secrets, Prometheus counters, readiness."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import embedded_settings
from tests.support.bridge import eventually, running_bridge
from xypr.core.http import HttpxPoster
from xypr.core.logging import configure_logging
from xypr.whatsapp import signature as meta_signature

CUSTOMER = "16505551234"


async def test_logs_are_json_with_ids_and_never_carry_a_secret(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", "json")
    async with running_bridge(embedded_settings(tmp_path, log_level="DEBUG")) as bridge:
        await bridge.customer_says(CUSTOMER, "log me")
        await eventually(bridge.genesys_received)
        await bridge.agent_says(CUSTOMER, "logged too")
        await eventually(lambda: bridge.whatsapp_sent(to=CUSTOMER))
        secrets = [bridge.demo["whatsapp"][name] for name in ("access_token", "app_secret", "verify_token")] + [
            bridge.demo["genesys"][name] for name in ("client_secret", "webhook_secret")
        ]
        secrets.append(bridge.runtime.settings.master_key.get_secret_value())
    configure_logging("WARNING", "json")

    output = capfd.readouterr().err
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert records, "no JSON log lines were written"
    sent = [r for r in records if r.get("event") == "genesys.sent"]
    assert sent, "the delivery to Genesys was not logged"
    assert {"tenant_id", "correlation_id", "genesys_message_id", "stage", "timestamp", "level"} <= set(sent[0])
    for secret in secrets:
        assert secret not in output


async def test_metrics_count_webhooks_events_and_upstream_calls(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path)) as bridge:
        await bridge.customer_says(CUSTOMER, "count me")
        await eventually(bridge.genesys_received)
        text = (await bridge.client.get("/metrics")).text

        def value(prefix: str) -> float:
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

        assert value('xypr_webhook_requests_total{outcome="accepted",source="whatsapp"}') >= 1
        assert value('xypr_events_total{outcome="processed",stage="genesys-api"}') >= 1
        assert value('xypr_upstream_request_seconds_count{outcome="200",upstream="genesys"}') >= 1
        assert 'xypr_queue_depth{queue="inbound.whatsapp"}' in text
        ready = await bridge.client.get("/ready")
        assert ready.json() == {
            "status": "ready",
            "checks": {"database": True, "broker": True, "cache": True, "storage": True},
        }


@pytest.mark.parametrize("given", [None, "not a usable id", "x" * 65])
async def test_one_correlation_id_from_the_webhook_to_the_upstream_call(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], given: str | None
) -> None:
    """Meta and Genesys send no X-Request-Id: the id the response names is the one everything else carries."""
    upstream_calls: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        upstream_calls.append(request)

    configure_logging("INFO", "json")
    try:
        async with (
            running_bridge(embedded_settings(tmp_path, log_level="INFO")) as bridge,
            httpx.AsyncClient(event_hooks={"request": [record]}) as upstream,
        ):
            # What leaves for Genesys, as sent on the wire (the poster adds its headers itself).
            bridge.runtime.genesys._poster = HttpxPoster(upstream)
            raw = orjson.dumps({
                "object": "whatsapp_business_account",
                "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550100",
                                 "phone_number_id": bridge.demo["whatsapp"]["phone_number_id"]},
                    "contacts": [{"profile": {"name": "Ann"}, "wa_id": CUSTOMER}],
                    "messages": [{"from": CUSTOMER, "id": "wamid.correlated", "timestamp": str(int(time.time())),
                                  "type": "text", "text": {"body": "trace me"}}],
                }}]}],
            })  # fmt: skip
            headers = {"X-Hub-Signature-256": meta_signature.sign(bridge.demo["whatsapp"]["app_secret"], raw)}
            if given is not None:
                headers["X-Request-Id"] = given
            answer = await bridge.client.post("/webhook/whatsapp", content=raw, headers=headers)
            assert answer.status_code == 200
            request_id = answer.headers["x-request-id"]

            async def genesys_sends() -> list[httpx.Request]:
                return [call for call in upstream_calls if call.url.path.endswith("/inbound/open/message")]

            sends = await eventually(genesys_sends)
            # The worker logs genesys.sent once Genesys has answered, a moment after the request left.
            logged: list[str] = []

            async def sent_logged() -> bool:
                logged.append(capfd.readouterr().err)
                return '"genesys.sent"' in "".join(logged)

            await eventually(sent_logged)
    finally:
        configure_logging("WARNING", "json")

    assert request_id != given
    assert [call.headers["x-request-id"] for call in sends] == [request_id]
    records = [json.loads(line) for line in "".join(logged).splitlines() if line.startswith("{")]
    (accepted,) = [r for r in records if r.get("event") == "webhook.accepted"]
    assert accepted["request_id"] == accepted["correlation_id"] == request_id
    (sent,) = [r for r in records if r.get("event") == "genesys.sent"]
    assert sent["correlation_id"] == request_id  # carried through inbound.whatsapp and send.genesys
