"""The emulated Genesys user login: authorize page, code grant with PKCE (S256), users/me, organizations/me."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from xypr.sandbox.genesys import create_genesys_app

CLIENT = "xypr-login"
REDIRECT = "https://xypr.test/auth/genesys/callback"
ORG = "org-login"


@pytest.fixture
async def genesys() -> AsyncIterator[httpx.AsyncClient]:
    app = create_genesys_app(base_url="http://genesys.test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://genesys.test") as client:
        (
            await client.post("/_sandbox/oauth/clients", json={"client_id": CLIENT, "redirect_uris": [REDIRECT]})
        ).raise_for_status()
        (await client.post("/_sandbox/integrations", json={
            "integration_id": "i-1", "name": "Acme", "client_id": "cc", "client_secret": "cc-secret",
            "webhook_url": "http://xypr.test/webhook/genesys", "webhook_secret": "0123456789abcdef", "org_id": ORG,
        })).raise_for_status()  # fmt: skip
        yield client
        await app.state.sandbox.aclose()


async def _user(genesys: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"org_id": ORG, "name": "Ada", "email": "ada@acme.test", "roles": ["Master Admin"],
            "permissions": ["admin"], **fields}  # fmt: skip
    answer = await genesys.post("/_sandbox/users", json=body)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _params(challenge: str | None = None, **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT, "state": "st-1"}
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return params | extra


async def _code(genesys: httpx.AsyncClient, user_id: str, verifier: str) -> str:
    answer = await genesys.post("/oauth/authorize", data=_params(_challenge(verifier), login=user_id))
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


async def _redeem(genesys: httpx.AsyncClient, code: str, verifier: str | None) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": CLIENT}
    if verifier is not None:
        form["code_verifier"] = verifier
    return await genesys.post("/oauth/token", data=form)


async def test_authorize_page_lists_the_sandbox_users_to_sign_in_as(genesys: httpx.AsyncClient) -> None:
    await _user(genesys, name="Ada <Admin>")
    page = await genesys.get("/oauth/authorize", params=_params(_challenge("v" * 43)))
    assert page.status_code == 200
    assert "Ada &lt;Admin&gt;" in page.text
    assert "name='code_challenge'" in page.text


async def test_code_with_the_right_verifier_gives_a_user_token(genesys: httpx.AsyncClient) -> None:
    user = await _user(genesys)
    verifier = secrets.token_urlsafe(48)
    answer = await _redeem(genesys, await _code(genesys, user["id"], verifier), verifier)
    assert answer.status_code == 200
    assert answer.json()["token_type"] == "bearer"
    assert answer.json()["expires_in"] > 0


async def test_code_with_a_wrong_verifier_is_refused_as_invalid_grant(genesys: httpx.AsyncClient) -> None:
    user = await _user(genesys)
    code = await _code(genesys, user["id"], secrets.token_urlsafe(48))
    answer = await _redeem(genesys, code, secrets.token_urlsafe(48))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert "code_verifier" in answer.json()["error_description"]


async def test_stolen_code_without_the_verifier_is_useless(genesys: httpx.AsyncClient) -> None:
    user = await _user(genesys)
    answer = await _redeem(genesys, await _code(genesys, user["id"], secrets.token_urlsafe(48)), None)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


async def test_a_code_is_single_use(genesys: httpx.AsyncClient) -> None:
    user = await _user(genesys)
    verifier = secrets.token_urlsafe(48)
    code = await _code(genesys, user["id"], verifier)
    assert (await _redeem(genesys, code, verifier)).status_code == 200
    assert (await _redeem(genesys, code, verifier)).json()["error"] == "invalid_grant"


async def test_public_client_without_pkce_is_sent_back_with_invalid_request(genesys: httpx.AsyncClient) -> None:
    answer = await genesys.get("/oauth/authorize", params=_params())
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["st-1"]


async def test_plain_pkce_method_is_refused(genesys: httpx.AsyncClient) -> None:
    answer = await genesys.get("/oauth/authorize", params=_params("abc", code_challenge_method="plain"))
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_request"]


async def test_unregistered_redirect_uri_is_an_error_page_not_a_redirect(genesys: httpx.AsyncClient) -> None:
    answer = await genesys.get("/oauth/authorize", params=_params("abc", redirect_uri="https://evil.test/cb"))
    assert answer.status_code == 400
    assert "location" not in answer.headers


async def test_users_me_expands_roles_permissions_and_organization(genesys: httpx.AsyncClient) -> None:
    user = await _user(genesys)
    verifier = secrets.token_urlsafe(48)
    token = (await _redeem(genesys, await _code(genesys, user["id"], verifier), verifier)).json()["access_token"]
    me = await genesys.get(
        "/api/v2/users/me",
        params={"expand": "authorization,organization"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert me.status_code == 200
    body = me.json()
    assert body["id"] == user["id"]
    assert body["email"] == "ada@acme.test"
    assert [role["name"] for role in body["authorization"]["roles"]] == ["Master Admin"]
    assert body["authorization"]["permissions"] == ["admin"]
    assert body["organization"]["id"] == ORG
    assert body["organization"]["name"] == "Acme"
    plain = await genesys.get("/api/v2/users/me", headers={"Authorization": f"Bearer {token}"})
    assert "authorization" not in plain.json()
    assert "organization" not in plain.json()
    org = await genesys.get("/api/v2/organizations/me", headers={"Authorization": f"Bearer {token}"})
    assert org.json()["id"] == ORG


async def test_users_me_refuses_a_client_credentials_token_for_lack_of_a_user(genesys: httpx.AsyncClient) -> None:
    grant = await genesys.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(b"cc:cc-secret").decode()},
    )
    token = grant.json()["access_token"]
    me = await genesys.get("/api/v2/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 400
    assert "user context" in me.json()["message"]
    org = await genesys.get("/api/v2/organizations/me", headers={"Authorization": f"Bearer {token}"})
    assert org.json()["id"] == ORG


async def test_users_me_without_or_with_an_expired_token_is_401(genesys: httpx.AsyncClient) -> None:
    user = await _user(genesys)
    verifier = secrets.token_urlsafe(48)
    token = (await _redeem(genesys, await _code(genesys, user["id"], verifier), verifier)).json()["access_token"]
    assert (await genesys.get("/api/v2/users/me")).status_code == 401
    await genesys.post("/_sandbox/tokens/expire")
    assert (await genesys.get("/api/v2/users/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401
