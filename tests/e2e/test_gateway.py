"""The gateway: who may pass, rate limits per IP and per tenant, body limits, headers, CORS, routing to
services in other processes, and webhooks that keep flowing while one tenant hammers the API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import eventually, running_bridge, tenant_spec
from tests.support.contracts import contract
from tests.support.live import serve
from tests.support.moto import free_port
from xypr.app import AppPlan, create_app
from xypr.auth.principal import CurrentPrincipal, Role
from xypr.auth.service import create_admin
from xypr.config import Settings
from xypr.sandbox.demo import DEMO_TENANT
from xypr.services.gateway import middleware as gateway_middleware
from xypr.whatsapp import signature


def _from(ip: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of a request from `ip` (the bridge trusts X-Forwarded-For from its local proxy, 127.0.0.1)."""
    return {"X-Forwarded-For": ip, **(headers or {})}


async def test_anonymous_calls_to_the_api_are_401_but_probes_docs_and_webhooks_are_public(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        refused = await bridge.client.get("/auth/info")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.headers["x-request-id"]
        assert (await bridge.client.get("/no/such/route")).status_code == 401  # no map of the API for strangers
        for public in ("/health", "/ready", "/metrics", "/docs", "/openapi.json"):
            assert (await bridge.client.get(public)).status_code == 200, public
        # Webhooks pass the gateway and are refused by their router for the missing signature, not for a login.
        unsigned = await bridge.client.post("/webhook/whatsapp", content=json.dumps(contract("meta/webhook-text.json")))
        assert unsigned.status_code in (401, 404)
        assert "authentication required" not in unsigned.text


async def test_garbage_bearer_token_is_401_invalid_token(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        answer = await bridge.client.get("/auth/info", headers={"Authorization": "Bearer not.a.jwt"})
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_webhook_meta_is_an_alias_of_webhook_whatsapp_for_get_and_post(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        wa = DEMO_TENANT["whatsapp"]
        handshake = await bridge.client.get(
            "/webhook/meta",
            params={"hub.mode": "subscribe", "hub.verify_token": wa["verify_token"], "hub.challenge": "1158201444"},
        )
        assert handshake.status_code == 200
        assert handshake.text == "1158201444"
        body = contract("meta/webhook-text.json")
        body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = wa["phone_number_id"]
        raw = json.dumps(body).encode()
        posted = await bridge.client.post(
            "/webhook/meta",
            content=raw,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature.sign(wa["app_secret"], raw)},
        )
        assert posted.status_code == 200
        assert posted.json()["events"] == 1


async def test_rate_limit_per_ip_answers_429_with_retry_after(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path, rate_limit_per_ip=5), workers=False) as bridge:
        statuses = [(await bridge.client.get("/auth/info", headers=_from("203.0.113.7"))).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        limited = await bridge.client.get("/docs", headers=_from("203.0.113.7"))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "address" in limited.json()["error"]["message"]
        assert limited.headers["x-request-id"]
        assert (await bridge.client.get("/docs", headers=_from("203.0.113.8"))).status_code == 200
        # The same address keeps its separate webhook budget.
        wa = DEMO_TENANT["whatsapp"]
        handshake = await bridge.client.get(
            "/webhook/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": wa["verify_token"], "hub.challenge": "7"},
            headers=_from("203.0.113.7"),
        )
        assert handshake.status_code == 200


def _signed_text(n: int) -> tuple[bytes, dict[str, str]]:
    wa = DEMO_TENANT["whatsapp"]
    body = contract("meta/webhook-text.json")
    value = body["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = wa["phone_number_id"]
    value["messages"][0]["id"] = f"wamid.rate-{n}"
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": signature.sign(wa["app_secret"], raw)}


async def test_signed_webhooks_never_spend_the_address_budget_which_only_refused_ones_do(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, rate_limit_webhooks_per_ip=5, rate_limit_webhooks_per_tenant=0)
    async with running_bridge(settings, workers=False) as bridge:
        genesys_ip = _from("198.51.100.20")  # one busy sender address, like a tenant's Genesys
        for n in range(12):  # more than the address budget, all authenticated
            raw, headers = _signed_text(n)
            answer = await bridge.client.post("/webhook/whatsapp", content=raw, headers={**headers, **genesys_ip})
            assert answer.status_code == 200, n
        garbage = _from("203.0.113.50")
        statuses = [
            (await bridge.client.post("/webhook/whatsapp", content=b"{}", headers=garbage)).status_code
            for _ in range(7)
        ]
        assert statuses == [401] * 5 + [429, 429]
        cut = await bridge.client.post("/webhook/whatsapp", content=b"{}", headers=garbage)
        assert 1 <= int(cut.headers["retry-after"]) <= 60
        # The flood is cut for its own address only.
        raw, headers = _signed_text(99)
        answer = await bridge.client.post("/webhook/whatsapp", content=raw, headers={**headers, **genesys_ip})
        assert answer.status_code == 200


async def test_authenticated_webhooks_are_limited_per_tenant_after_the_signature(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, rate_limit_webhooks_per_tenant=3)
    async with running_bridge(settings, workers=False) as bridge:
        statuses = []
        for n in range(5):
            raw, headers = _signed_text(n)
            answer = await bridge.client.post(
                "/webhook/whatsapp", content=raw, headers={**headers, **_from(f"10.9.0.{n}")}
            )
            statuses.append(answer.status_code)
        assert statuses == [200, 200, 200, 429, 429]
        assert 1 <= int(answer.headers["retry-after"]) <= 60
        assert "organisation" in answer.json()["error"]["message"]
        # A badly signed body never reaches the tenant's budget: it is refused for its signature.
        raw, headers = _signed_text(7)
        forged = await bridge.client.post(
            "/webhook/whatsapp", content=raw, headers={**headers, "X-Hub-Signature-256": "sha256=" + "1" * 64}
        )
        assert forged.status_code == 403


async def test_rate_limit_per_tenant_is_shared_by_its_users_and_spares_other_tenants(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path, rate_limit_per_tenant=6), workers=False) as bridge:
        agent, supervisor = await login_as(bridge, "agent"), await login_as(bridge, "supervisor")
        other_spec = tenant_spec()
        await bridge.add_tenant(other_spec)
        other = await login_as(bridge, "agent", other_spec)
        statuses = [
            (await bridge.client.get("/auth/info", headers=_from(f"198.51.100.{n % 2}", who))).status_code
            for n, who in enumerate([agent, supervisor] * 4)
        ]
        assert statuses == [200] * 6 + [429, 429]
        limited = await bridge.client.get("/auth/info", headers=agent)
        assert limited.status_code == 429
        assert "organisation" in limited.json()["error"]["message"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert (await bridge.client.get("/auth/info", headers=other)).status_code == 200


async def test_webhooks_are_still_accepted_while_one_tenant_hammers_the_api(backend_settings: Settings) -> None:
    settings = backend_settings.model_copy(update={"rate_limit_per_tenant": 20})
    async with running_bridge(settings, workers=True) as bridge:
        agent = await login_as(bridge, "agent")
        customers_done = asyncio.Event()

        async def hammer() -> list[int]:
            statuses: list[int] = []
            async with httpx.AsyncClient(base_url=bridge.url, headers=agent, timeout=20) as client:
                for _ in range(100):  # waves of 30 concurrent calls until the customers are done (bounded)
                    answers = await asyncio.gather(*(client.get("/auth/info") for _ in range(30)))
                    statuses += [answer.status_code for answer in answers]
                    if customers_done.is_set():
                        break
            return statuses

        async def customers() -> list[dict[str, Any]]:
            sent = []
            try:
                for n in range(10):
                    sent.append(await bridge.customer_says(f"1650555{n:04d}", f"still here {n}"))
            finally:
                customers_done.set()
            return sent

        statuses, webhooks = await asyncio.gather(hammer(), customers())
        assert statuses.count(200) == 20  # the tenant got its budget of the minute…
        assert statuses.count(429) == len(statuses) - 20  # …and was refused beyond it…
        assert [(hook["webhook_status"], hook["attempts"]) for hook in webhooks] == [(200, 1)] * 10  # …Meta was not

        async def delivered() -> set[str] | None:
            texts = {row["body"].get("text") for row in await bridge.genesys_received("message")}
            wanted = {f"still here {n}" for n in range(10)}
            return wanted if wanted <= texts else None

        await eventually(delivered, within=30)


async def test_api_bodies_over_the_limit_are_413_declared_or_streamed(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path, max_api_body_bytes=64 * 1024), workers=False) as bridge:
        big = b"grant_type=password&username=" + b"a" * (65 * 1024)
        declared = await bridge.client.post(
            "/auth/token", content=big, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):  # 20 times 8 KiB, no Content-Length: counted while it streams
                yield b"x" * 8192

        streamed = await bridge.client.post("/auth/token", content=chunks())
        assert streamed.status_code == 413
        small = await bridge.client.post(
            "/auth/token", data={"grant_type": "password", "username": "a", "password": "b"}
        )
        assert small.status_code == 401
        # Webhooks have their own limit (Meta sends up to 3 MB): 100 KiB reaches the router, which cannot
        # authenticate it (no signature, no tenant in it).
        webhook = await bridge.client.post("/webhook/whatsapp", content=b"{" + b" " * (100 * 1024))
        assert webhook.status_code == 401


async def test_cors_admits_only_the_configured_widget_origin(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, cors_origins="https://widget.example, https://apps.mypurecloud.ie")
    async with running_bridge(settings, workers=False) as bridge:
        preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        allowed = await bridge.client.options("/auth/info", headers={"Origin": "https://widget.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://widget.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = await bridge.client.options("/auth/info", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        simple = await bridge.client.get("/health", headers={"Origin": "https://apps.mypurecloud.ie"})
        assert simple.headers["access-control-allow-origin"] == "https://apps.mypurecloud.ie"


async def test_security_headers_on_api_answers_and_html_pages(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        api = await bridge.client.get("/auth/info")
        assert api.headers["x-content-type-options"] == "nosniff"
        assert api.headers["x-frame-options"] == "DENY"
        assert api.headers["referrer-policy"] == "no-referrer"
        docs = await bridge.client.get("/docs")
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        assert "strict-transport-security" not in docs.headers  # http here; https adds HSTS


async def test_metrics_can_be_reserved_to_xypr_admins(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path, metrics_public=False), workers=False) as bridge:
        assert (await bridge.client.get("/metrics")).status_code == 401
        assert (await bridge.client.get("/metrics", headers=await login_as(bridge, "tenant_admin"))).status_code == 403
        assert (await bridge.client.get("/metrics", headers=await login_as(bridge, "xypr_admin"))).status_code == 200
        assert (await bridge.client.get("/health")).status_code == 200


echo = APIRouter()


@echo.api_route("/auth/_echo", methods=["GET", "POST"])
async def echo_request(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """What reached the service behind the gateway."""
    body = await request.body()
    return {"headers": dict(request.headers), "client": request.client.host if request.client else None,
            "body_bytes": len(body), "role": principal.role.value}  # fmt: skip


async def test_gateway_proxies_a_service_running_in_another_process(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    auth_app = create_app(
        settings, AppPlan(http_services=("auth",), public_gateway=False, run_migrations=True, extra_routers=[echo])
    )
    async with serve(auth_app) as auth_url:
        gateway = create_app(settings, AppPlan(http_services=("whatsapp-webhook",), remote_services={"auth": auth_url}))
        async with serve(gateway) as gateway_url, httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
            await create_admin(auth_app.state.runtime.database, email="ops@x.test", password="a long password!")
            token = await client.post(
                "/auth/token", data={"grant_type": "password", "username": "ops@x.test", "password": "a long password!"}
            )
            assert token.status_code == 200
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            body = b"z" * (512 * 1024)
            echoed = await client.post("/auth/_echo", content=body, headers={**bearer, "X-Forwarded-For": "192.0.2.9"})
            assert echoed.status_code == 200
            seen = echoed.json()
            assert seen["body_bytes"] == len(body)
            assert seen["role"] == "xypr_admin"
            assert seen["headers"]["x-forwarded-for"].startswith("192.0.2.9")
            assert seen["headers"]["x-forwarded-host"] == gateway_url.removeprefix("http://")
            assert seen["headers"]["x-forwarded-proto"] == "http"
            assert seen["client"] == "192.0.2.9"  # the service trusts the gateway's X-Forwarded-For
            assert seen["headers"]["x-request-id"] == echoed.headers["x-request-id"]  # one id in both logs
            assert echoed.headers.get_list("server") == ["uvicorn"]
            validated = await client.get("/auth/validate", headers=bearer)
            assert validated.headers["x-xypr-role"] == "xypr_admin"
            assert (await client.get("/auth/info")).status_code == 401  # the gateway refuses before proxying


widget_stand_in = APIRouter()


@widget_stand_in.post("/widget/api/conversations/{conversation}/media")
async def count_upload(request: Request) -> dict[str, int]:
    """Reads what the gateway streams on, as the agent widget would."""
    return {"bytes": len(await request.body())}


async def test_an_upload_too_large_for_a_widget_in_another_process_is_a_413(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_middleware, "UPLOAD_BODY_BYTES", 256 * 1024)
    settings = embedded_settings(tmp_path)
    widget = create_app(settings, AppPlan(http_services=(), public_gateway=False, extra_routers=[widget_stand_in]))
    async with serve(widget) as widget_url:
        plan = AppPlan(http_services=("auth",), run_migrations=True, remote_services={"agent-widget": widget_url})
        gateway = create_app(settings, plan)
        async with serve(gateway) as gateway_url, httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
            await create_admin(gateway.state.runtime.database, email="ops@x.test", password="a long password!")
            token = await client.post(
                "/auth/token", data={"grant_type": "password", "username": "ops@x.test", "password": "a long password!"}
            )
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            path = "/widget/api/conversations/c-1/media"

            within = await client.post(path, content=b"x" * (200 * 1024), headers=bearer)
            assert (within.status_code, within.json()) == (200, {"bytes": 200 * 1024})

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams on
                for _ in range(8):
                    yield b"x" * (64 * 1024)

            streamed = await client.post(path, content=chunks(), headers=bearer)
            assert streamed.status_code == 413
            assert streamed.json()["error"]["code"] == "payload_too_large"
            assert streamed.headers["x-content-type-options"] == "nosniff"
            announced = await client.post(path, content=b"x" * (300 * 1024), headers=bearer)
            assert announced.status_code == 413


async def test_gateway_answers_502_when_the_service_is_down(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    down = f"http://127.0.0.1:{free_port()}"
    gateway = create_app(settings, AppPlan(http_services=(), run_migrations=True, remote_services={"auth": down}))
    async with serve(gateway) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        email, password = "ops@x.test", "a long password!"
        answer = await client.post(
            "/auth/token", data={"grant_type": "password", "username": email, "password": password}
        )
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "bad_gateway"


async def test_webhook_answers_through_the_plain_route_keep_the_gateway_headers_and_error_bodies(
    tmp_path: Path,
) -> None:
    settings = embedded_settings(tmp_path, max_webhook_body_bytes=4096)
    async with running_bridge(settings, workers=False) as bridge:
        given = "caller-id-0123456789"
        unsigned = await bridge.client.post("/webhook/genesys", content=b"{}", headers={"X-Request-Id": given})
        assert unsigned.status_code == 401
        assert unsigned.json()["error"]["code"] == "unauthorized"
        assert unsigned.headers["x-request-id"] == given
        assert unsigned.headers["x-content-type-options"] == "nosniff"
        assert unsigned.headers["content-type"] == "application/json"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts what streams in
            for _ in range(10):
                yield b"x" * 1024

        streamed = await bridge.client.post(
            "/webhook/meta", content=chunks(), headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"
        assert streamed.headers["x-request-id"]
        # The path's other methods are still the FastAPI route's: GET is the handshake, PUT is 405.
        assert (await bridge.client.get("/webhook/whatsapp", params={"hub.mode": "x"})).status_code == 403
        refused = await bridge.client.put("/webhook/whatsapp", content=b"{}")
        assert refused.status_code == 405
        assert refused.json()["error"]["code"] == "method_not_allowed"
        assert refused.headers["allow"] == "GET, POST"  # RFC 9110: every method of the resource


async def test_a_method_a_path_does_not_answer_is_a_405_naming_the_methods_it_does(
    backend_settings: Settings,
) -> None:
    async with running_bridge(backend_settings) as bridge:
        admin = await login_as(bridge, Role.XYPR_ADMIN)
        for method, path, allowed in [
            ("DELETE", "/health", "GET"),
            ("POST", "/ready", "GET"),
            ("GET", "/webhook/genesys", "POST"),
            ("DELETE", "/docs", "GET"),
            # Its own resource, although `GET /dlq/{id}` would take "replay" for an id.
            ("OPTIONS", "/dlq/replay", "POST"),
            ("PUT", "/dlq/d-1", "GET"),
        ]:
            answer = await bridge.client.request(method, path, headers=admin)
            assert (answer.status_code, answer.headers.get("allow")) == (405, allowed), (method, path)
            assert answer.json()["error"]["code"] == "method_not_allowed"
