"""Access JWTs, refresh tokens, argon2id passwords, PKCE and the Genesys role mapping (pure code)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from xypr.auth.genesys import authorize_url, new_pkce, pkce_challenge
from xypr.auth.passwords import check_password_strength, hash_password, needs_rehash, verify_password
from xypr.auth.principal import Principal, Role
from xypr.auth.roles import RoleMapping, role_for, tenant_role_mapping
from xypr.auth.tokens import issue_access_token, new_refresh_token, read_access_token, refresh_token_hash
from xypr.core.errors import BadRequest, Unauthorized

KEY = b"k" * 32
AGENT = Principal(user_id="u-1", role=Role.AGENT, tenant_id="t-1", email="a@example.test", session_id="s-1")


def test_access_token_carries_sub_role_tenant_session_and_expiry() -> None:
    issued = issue_access_token(KEY, AGENT, ttl=900, now=1_000_000)
    claims = jwt.decode(issued.token, KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["sub"] == "u-1"
    assert claims["role"] == "agent"
    assert claims["tenant"] == "t-1"
    assert claims["sid"] == "s-1"
    assert claims["exp"] - claims["iat"] == 900 == issued.expires_at - 1_000_000
    assert claims["jti"] == issued.jti
    assert len(issued.jti) == 32
    assert jwt.get_unverified_header(issued.token)["alg"] == "HS256"


def test_access_token_reads_back_as_the_same_principal() -> None:
    assert read_access_token(KEY, issue_access_token(KEY, AGENT, ttl=60).token) == AGENT


def test_expired_access_token_is_refused_saying_it_expired() -> None:
    old = issue_access_token(KEY, AGENT, ttl=60, now=time.time() - 3600).token
    with pytest.raises(Unauthorized, match="expired"):
        read_access_token(KEY, old)


def test_access_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(Unauthorized, match="invalid access token"):
        read_access_token(KEY, issue_access_token(b"x" * 32, AGENT, ttl=60).token)


def test_access_token_with_a_raised_role_in_its_payload_is_refused() -> None:
    header, payload, signature = issue_access_token(KEY, AGENT, ttl=60).token.split(".")
    claims = jwt.decode(f"{header}.{payload}.{signature}", KEY, algorithms=["HS256"])
    claims["role"] = "xypr_admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        read_access_token(KEY, f"{header}.{forged_payload}.{signature}")


def test_unsigned_alg_none_token_is_refused() -> None:
    claims = {"iss": "xypr", "sub": "u", "role": "xypr_admin", "iat": int(time.time()), "exp": int(time.time()) + 60,
              "jti": "j"}  # fmt: skip
    with pytest.raises(Unauthorized):
        read_access_token(KEY, jwt.encode(claims, key=None, algorithm="none"))


def test_tenant_role_token_without_a_tenant_is_refused() -> None:
    lost = Principal(user_id="u", role=Role.SUPERVISOR, tenant_id=None)
    with pytest.raises(Unauthorized):
        read_access_token(KEY, issue_access_token(KEY, lost, ttl=60).token)


def test_refresh_tokens_are_random_and_stored_as_sha256_hex() -> None:
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second
    assert first.startswith("xrt_")
    assert len(first) > 40
    digest = refresh_token_hash(first)
    assert len(digest) == 64
    assert first not in digest
    assert digest == refresh_token_hash(first)


def test_password_hash_is_argon2id_with_a_salt() -> None:
    one, two = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert one.startswith("$argon2id$")
    assert one != two
    assert "correct horse" not in one
    assert verify_password(one, "correct horse battery")
    assert not verify_password(one, "correct horse battery!")
    assert not needs_rehash(one)


def test_password_check_of_a_missing_account_is_false() -> None:
    assert not verify_password(None, "anything at all")


def test_garbage_hash_does_not_verify() -> None:
    assert not verify_password("not-a-phc-string", "anything at all")


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_passwords_under_twelve_characters_are_refused(password: str) -> None:
    with pytest.raises(BadRequest, match="at least 12"):
        check_password_strength(password)


def test_pkce_s256_matches_the_rfc_7636_example() -> None:
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_new_pkce_verifier_is_43_to_128_unreserved_characters() -> None:
    pkce = new_pkce()
    assert 43 <= len(pkce.verifier) <= 128
    assert set(pkce.verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    assert pkce.challenge == pkce_challenge(pkce.verifier)


def test_authorize_url_asks_for_a_code_with_an_s256_challenge() -> None:
    url = authorize_url("https://login.mypurecloud.ie/", client_id="c", redirect_uri="https://x/cb", state="s",
                        challenge="ch")  # fmt: skip
    assert url.startswith("https://login.mypurecloud.ie/oauth/authorize?")
    for part in ("response_type=code", "client_id=c", "redirect_uri=https%3A%2F%2Fx%2Fcb", "state=s",
                 "code_challenge=ch", "code_challenge_method=S256"):  # fmt: skip
        assert part in url


def test_default_mapping_master_admin_is_tenant_admin() -> None:
    assert role_for(RoleMapping(), ["Employee", "Master Admin"], []) is Role.TENANT_ADMIN


def test_default_mapping_supervisor_role_is_supervisor_whatever_the_case() -> None:
    assert role_for(RoleMapping(), ["supervisor"], []) is Role.SUPERVISOR


def test_default_mapping_gives_anyone_else_least_privilege_agent() -> None:
    assert role_for(RoleMapping(), ["Employee"], ["directory:user:view"]) is Role.AGENT
    assert role_for(RoleMapping(), [], []) is Role.AGENT


def test_tenant_mapping_by_permission_with_genesys_wildcards() -> None:
    mapping = RoleMapping.model_validate(
        {"supervisor": {"permissions": ["conversation:communication:monitor"]}, "default": None}
    )
    assert role_for(mapping, [], ["conversation:*:*"]) is Role.SUPERVISOR
    assert role_for(mapping, [], ["conversation:communication:monitor"]) is Role.SUPERVISOR
    assert role_for(mapping, [], ["conversation:message:*"]) is None


def test_mapping_default_null_refuses_users_matching_no_rule() -> None:
    mapping = RoleMapping.model_validate({"agent": {"roles": ["Agent"]}, "default": None})
    assert role_for(mapping, ["Agent"], []) is Role.AGENT
    assert role_for(mapping, ["Employee"], []) is None


def test_mapping_can_never_default_to_xypr_admin() -> None:
    assert tenant_role_mapping({"role_mapping": {"default": "xypr_admin"}}) is None


def test_tenant_without_a_mapping_gets_the_defaults_and_a_bad_one_is_reported_as_none() -> None:
    assert tenant_role_mapping({}) == RoleMapping()
    assert tenant_role_mapping({"role_mapping": {"admins": ["x"]}}) is None
