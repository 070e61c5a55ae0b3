"""Logging in, end to end against the emulated Genesys: sessions, tokens, refresh rotation, logout, secrets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter
from sqlalchemy import inspect, text

from tests.conftest import embedded_settings
from tests.support.auth import (
    TOKEN_EXCHANGE,
    admin_credentials,
    browser_login,
    genesys_user,
    genesys_user_token,
    login_as,
    tenant_org_id,
)
from tests.support.bridge import Bridge, running_bridge, tenant_spec
from xypr.auth.principal import CurrentPrincipal
from xypr.auth.tokens import issue_access_token, read_access_token, refresh_token_hash
from xypr.config import Settings
from xypr.sandbox.demo import DEMO_TENANT

# A protected, state-changing route, to see what the gateway demands of cookie sessions.
probe = APIRouter()


@probe.post("/probe/change")
async def change(principal: CurrentPrincipal) -> dict[str, str]:
    return {"changed_by": principal.user_id}


def _browser(bridge: Bridge) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=bridge.url, timeout=10)


async def _exchange(bridge: Bridge, user_id: str) -> dict[str, Any]:
    answer = await bridge.client.post(
        "/auth/token", data={"grant_type": TOKEN_EXCHANGE, "subject_token": await genesys_user_token(bridge, user_id)}
    )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_genesys_browser_login_opens_a_cookie_session_with_the_mapped_role(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        person = await genesys_user(bridge, DEMO_TENANT["genesys"]["org_id"], roles=["Supervisor"])
        async with _browser(bridge) as browser:
            callback = await browser_login(browser, person["id"], next_path="/auth/info")
            assert callback.status_code == 303
            assert callback.headers["location"] == "/auth/info"
            cookies = {c.split("=", 1)[0]: c for c in callback.headers.get_list("set-cookie")}
            for name in ("xypr_access", "xypr_refresh"):
                assert "HttpOnly" in cookies[name]
                assert "SameSite=lax" in cookies[name]
                assert "Secure" not in cookies[name]  # the public URL is http here
            assert "Path=/auth" in cookies["xypr_refresh"]
            assert "HttpOnly" not in cookies["xypr_csrf"]
            me = await browser.get("/auth/info")
        assert me.status_code == 200
        assert me.json()["user"]["role"] == "supervisor"
        assert me.json()["user"]["email"] == person["email"]
        assert me.json()["tenant"]["name"] == DEMO_TENANT["name"]
        assert me.json()["authenticatedBy"] == "cookie"


async def test_cookie_session_unsafe_request_without_the_csrf_header_is_refused(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False, extra_routers=[probe]) as bridge:
        person = await genesys_user(bridge, DEMO_TENANT["genesys"]["org_id"], roles=["Employee"])
        async with _browser(bridge) as browser:
            await browser_login(browser, person["id"])
            csrf = browser.cookies["xypr_csrf"]
            missing = await browser.post("/probe/change")
            wrong = await browser.post("/probe/change", headers={"X-CSRF-Token": csrf[:-1] + "x"})
            right = await browser.post("/probe/change", headers={"X-CSRF-Token": csrf})
            reading = await browser.get("/auth/info")
            access = browser.cookies["xypr_access"]
        assert missing.status_code == 403
        assert missing.json()["error"]["code"] == "csrf_failed"
        assert wrong.status_code == 403
        assert right.status_code == 200
        assert reading.status_code == 200  # safe methods need no CSRF token
        # A bearer token is not sent by browsers on their own: no CSRF token is needed with it.
        assert (await bridge.client.post("/probe/change", headers=_bearer(access))).status_code == 200


async def test_user_of_an_unknown_organisation_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        stranger = await genesys_user(bridge, "org-not-onboarded", roles=["Master Admin"])
        async with _browser(bridge) as browser:
            refused = await browser_login(browser, stranger["id"])
            assert "xypr_access" not in browser.cookies
        assert refused.status_code == 403
        assert "org-not-onboarded" in refused.json()["error"]["message"]
        assert "not connected to Xypr" in refused.json()["error"]["message"]
        exchanged = await bridge.client.post(
            "/auth/token",
            data={"grant_type": TOKEN_EXCHANGE, "subject_token": await genesys_user_token(bridge, stranger["id"])},
        )
        assert exchanged.status_code == 403
        assert "not connected to Xypr" in exchanged.json()["error"]["message"]


async def test_callback_carrying_another_browsers_state_is_refused(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        person = await genesys_user(bridge, DEMO_TENANT["genesys"]["org_id"], roles=["Master Admin"])
        async with _browser(bridge) as victim, _browser(bridge) as attacker:
            start = await attacker.get("/auth/genesys/login")
            authorize = httpx.URL(start.headers["location"])
            approved = await attacker.post(authorize.path, data={**dict(authorize.params), "login": person["id"]})
            # The attacker lures the victim's browser to the callback with the attacker's code and state.
            lured = await victim.get(httpx.URL(approved.headers["location"]).raw_path.decode())
            assert lured.status_code == 403
            assert "xypr_access" not in victim.cookies


async def test_callback_reporting_a_genesys_error_is_a_clear_401(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        answer = await bridge.client.get(
            "/auth/genesys/callback", params={"error": "access_denied", "error_description": "user cancelled"}
        )
        assert answer.status_code == 401
        assert "user cancelled" in answer.json()["error"]["message"]


async def test_expired_access_token_is_401_and_a_refresh_gives_a_working_one(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        person = await genesys_user(bridge, DEMO_TENANT["genesys"]["org_id"], roles=["Employee"])
        tokens = await _exchange(bridge, person["id"])
        key = bridge.runtime.box.derive("jwt")
        principal = read_access_token(key, tokens["access_token"])
        expired = issue_access_token(key, principal, ttl=900, now=time.time() - 3600).token
        answer = await bridge.client.get("/auth/info", headers=_bearer(expired))
        assert answer.status_code == 401
        assert "expired" in answer.json()["error"]["message"]
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        renewed = await bridge.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert renewed.status_code == 200
        assert (
            await bridge.client.get("/auth/info", headers=_bearer(renewed.json()["access_token"]))
        ).status_code == 200


async def test_access_token_really_expires_after_its_lifetime(tmp_path: Path) -> None:
    # 5 s: a loaded machine took more than 1 s between the login and the first request.
    async with running_bridge(embedded_settings(tmp_path, access_token_ttl_seconds=5), workers=False) as bridge:
        before_login = time.time()
        headers = await login_as(bridge, "agent")
        assert (await bridge.client.get("/auth/info", headers=headers)).status_code == 200
        # Until the lifetime has passed for certain, counted from before the token was issued (wall-clock seconds).
        time.sleep(max(0.0, before_login + 5 + 1.1 - time.time()))  # noqa: ASYNC251 (nothing else needs the loop)
        assert (await bridge.client.get("/auth/info", headers=headers)).status_code == 401


async def test_refresh_token_reuse_revokes_the_whole_family(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        person = await genesys_user(bridge, DEMO_TENANT["genesys"]["org_id"], roles=["Employee"])
        first = await _exchange(bridge, person["id"])
        grant = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        second = (await bridge.client.post("/auth/token", data=grant)).json()
        assert second["refresh_token"] != first["refresh_token"]
        assert (await bridge.client.get("/auth/info", headers=_bearer(second["access_token"]))).status_code == 200
        # Someone replays the spent token (it leaked): the session is revoked for everyone holding it.
        replay = await bridge.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert replay.status_code == 401
        assert "already used" in replay.json()["error"]["message"]
        latest = await bridge.client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert latest.status_code == 401
        assert (await bridge.client.get("/auth/info", headers=_bearer(second["access_token"]))).status_code == 401
        # Another session of the same person is untouched.
        other = await _exchange(bridge, person["id"])
        assert (await bridge.client.get("/auth/info", headers=_bearer(other["access_token"]))).status_code == 200


async def test_logout_ends_the_access_and_the_refresh_token(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        person = await genesys_user(bridge, DEMO_TENANT["genesys"]["org_id"], roles=["Employee"])
        tokens = await _exchange(bridge, person["id"])
        out = await bridge.client.post("/auth/logout", headers=_bearer(tokens["access_token"]))
        assert out.status_code == 200
        assert (await bridge.client.get("/auth/info", headers=_bearer(tokens["access_token"]))).status_code == 401
        again = await bridge.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert again.status_code == 401


async def test_browser_logout_needs_the_csrf_token_and_clears_the_cookies(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        person = await genesys_user(bridge, DEMO_TENANT["genesys"]["org_id"], roles=["Employee"])
        async with _browser(bridge) as browser:
            await browser_login(browser, person["id"])
            forged = await browser.post("/auth/logout")
            assert forged.status_code == 403
            out = await browser.post("/auth/logout", headers={"X-CSRF-Token": browser.cookies["xypr_csrf"]})
            assert out.status_code == 200
            assert all("Max-Age=0" in cookie for cookie in out.headers.get_list("set-cookie"))
            assert "xypr_access" not in browser.cookies
            assert (await browser.get("/auth/info")).status_code == 401


async def test_browser_session_refreshes_with_its_cookie_and_csrf_token(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        person = await genesys_user(bridge, DEMO_TENANT["genesys"]["org_id"], roles=["Employee"])
        async with _browser(bridge) as browser:
            await browser_login(browser, person["id"])
            before = browser.cookies["xypr_access"]
            assert (await browser.post("/auth/refresh")).status_code == 403  # no CSRF header
            renewed = await browser.post("/auth/refresh", headers={"X-CSRF-Token": browser.cookies["xypr_csrf"]})
            assert renewed.status_code == 200
            assert renewed.json()["user"]["role"] == "agent"
            assert browser.cookies["xypr_access"] != before
            assert (await browser.get("/auth/info")).status_code == 200


async def test_admin_logs_in_with_an_argon2id_password(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        email, password = await admin_credentials(bridge)
        session = await bridge.client.post("/auth/login", json={"email": email.upper(), "password": password})
        assert session.status_code == 200
        assert session.json()["user"]["role"] == "xypr_admin"
        assert session.json()["user"]["tenantId"] is None
        assert session.json()["csrfToken"] == bridge.client.cookies.get("xypr_csrf", session.cookies["xypr_csrf"])
        assert session.json()["expiresAt"].endswith("Z")  # RFC 3339 UTC, like every time the API answers
        assert "access_token" not in session.text  # browser logins keep tokens in HttpOnly cookies
        form = await bridge.client.post("/auth/token", data={"grant_type": "password", "username": email,
                                                              "password": password})  # fmt: skip
        assert form.status_code == 200
        assert form.json()["token_type"] == "Bearer"
        info = await bridge.client.get("/auth/validate", headers=_bearer(form.json()["access_token"]))
        assert info.headers["x-xypr-role"] == "xypr_admin"
        async with bridge.runtime.database.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT password_hash FROM users WHERE email = :e"), {"e": email})).one()
        assert stored[0].startswith("$argon2id$")


async def test_wrong_admin_password_is_a_vague_401_and_guessing_is_limited(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        email, password = await admin_credentials(bridge)
        wrong = await bridge.client.post("/auth/login", json={"email": email, "password": "not the password"})
        unknown = await bridge.client.post("/auth/login", json={"email": "nobody@x.test", "password": "whatever"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        statuses = [
            (await bridge.client.post("/auth/login", json={"email": email, "password": f"guess {n}"})).status_code
            for n in range(10)
        ]
        assert statuses[:9] == [401] * 9
        assert statuses[9] == 429
        locked = await bridge.client.post("/auth/login", json={"email": email, "password": password})
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 300


async def test_tenant_role_mapping_decides_the_role_and_can_refuse(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        spec = tenant_spec()
        spec["genesys"]["org_id"] = "org-mapped"
        spec["settings"] = {"role_mapping": {"supervisor": {"roles": ["Team Lead"]}, "default": None}}
        await bridge.add_tenant(spec)
        lead = await genesys_user(bridge, "org-mapped", roles=["Team Lead"])
        assert (await _exchange(bridge, lead["id"]))["role"] == "supervisor"
        nobody = await genesys_user(bridge, "org-mapped", roles=["Employee"])
        refused = await bridge.client.post(
            "/auth/token",
            data={"grant_type": TOKEN_EXCHANGE, "subject_token": await genesys_user_token(bridge, nobody["id"])},
        )
        assert refused.status_code == 403
        assert "no access" in refused.json()["error"]["message"]


async def test_genesys_role_change_is_applied_at_the_next_login(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        org = await tenant_org_id(bridge)
        person = await genesys_user(bridge, org, roles=["Master Admin"])
        assert (await _exchange(bridge, person["id"]))["role"] == "tenant_admin"
        demoted = {**person, "org_id": org, "roles": ["Employee"]}
        (await bridge.genesys.post("/_sandbox/users", json=demoted)).raise_for_status()
        assert (await _exchange(bridge, person["id"]))["role"] == "agent"


async def test_token_exchange_refuses_a_genesys_client_credentials_token(tmp_path: Path) -> None:
    async with running_bridge(embedded_settings(tmp_path), workers=False) as bridge:
        demo = DEMO_TENANT["genesys"]
        grant = await bridge.genesys.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(demo["client_id"], demo["client_secret"])
        )
        answer = await bridge.client.post(
            "/auth/token", data={"grant_type": TOKEN_EXCHANGE, "subject_token": grant.json()["access_token"]}
        )
        assert answer.status_code == 401
        assert "user" in answer.json()["error"]["message"]


async def _database_text(settings: Settings, bridge: Bridge) -> str:
    """Every value of every row of every table, as text."""
    async with bridge.runtime.database.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        values: list[str] = []
        for table in tables:
            for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all():  # noqa: S608 (names from the schema)
                values.extend(str(value) for value in row)
    return "\n".join(values)


async def test_the_database_holds_no_secret_in_clear_text(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings, workers=False) as bridge:
        email, password = await admin_credentials(bridge)
        admin = (await bridge.client.post("/auth/token", data={"grant_type": "password", "username": email,
                                                                "password": password})).json()  # fmt: skip
        rotated = (await bridge.client.post("/auth/refresh", json={"refresh_token": admin["refresh_token"]})).json()
        spec = tenant_spec()
        await bridge.add_tenant(spec)
        person = await genesys_user(bridge, await tenant_org_id(bridge, spec), roles=["Employee"])
        genesys_token = await genesys_user_token(bridge, person["id"])
        agent = (await bridge.client.post("/auth/token", data={"grant_type": TOKEN_EXCHANGE,
                                                                "subject_token": genesys_token})).json()  # fmt: skip
        secrets = [password, admin["refresh_token"], rotated["refresh_token"], agent["refresh_token"], genesys_token,
                   admin["access_token"], agent["access_token"]]  # fmt: skip
        for tenant in (DEMO_TENANT, spec):
            secrets += [tenant["genesys"]["client_secret"], tenant["genesys"]["webhook_secret"]]
            secrets += [tenant["whatsapp"][name] for name in ("access_token", "app_secret", "verify_token")]
        dump = await _database_text(backend_settings, bridge)
        # The scan did see the auth tables: the hashes of what it must not find are there.
        assert refresh_token_hash(admin["refresh_token"]) in dump
        assert "$argon2id$" in dump
        leaked = [secret[:6] + "…" for secret in secrets if secret in dump]
        assert leaked == []
