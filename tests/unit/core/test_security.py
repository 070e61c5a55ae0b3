"""Webhook signatures of both sides and the tenant secret box."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from xypr.core.secretbox import SecretBox, SecretBoxError, generate_master_key
from xypr.genesys import signature as genesys_signature
from xypr.whatsapp import signature as meta_signature

BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_meta_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    expected = "sha256=" + hmac.new(b"app-secret", BODY, hashlib.sha256).hexdigest()
    assert meta_signature.sign("app-secret", BODY) == expected
    assert meta_signature.verify("app-secret", BODY, expected)


@pytest.mark.parametrize("header", [None, "", "sha256=", "sha1=abc", "sha256=" + "0" * 64])
def test_meta_signature_refuses_missing_or_wrong_headers(header: str | None) -> None:
    assert not meta_signature.verify("app-secret", BODY, header)


def test_meta_signature_refuses_a_body_changed_by_one_byte() -> None:
    header = meta_signature.sign("app-secret", BODY)
    assert not meta_signature.verify("app-secret", BODY + b" ", header)


def test_genesys_signature_is_base64_not_hex() -> None:
    digest = hmac.new(b"webhook-secret-16chars", BODY, hashlib.sha256).digest()
    expected = "sha256=" + base64.b64encode(digest).decode()
    assert genesys_signature.sign("webhook-secret-16chars", BODY) == expected
    assert genesys_signature.verify("webhook-secret-16chars", BODY, expected)
    assert not genesys_signature.verify("webhook-secret-16chars", BODY, "sha256=" + digest.hex())


def test_secret_box_round_trip_is_bound_to_the_tenant() -> None:
    box = SecretBox(generate_master_key())
    sealed = box.seal("EAAG-token", tenant_id="tenant-a")
    assert "EAAG-token" not in sealed
    assert box.open(sealed, tenant_id="tenant-a") == "EAAG-token"
    with pytest.raises(SecretBoxError):
        box.open(sealed, tenant_id="tenant-b")


def test_secret_box_rotation_opens_old_versions_and_seals_with_the_newest() -> None:
    old = generate_master_key("v1")
    sealed_old = SecretBox(old).seal("s", tenant_id="t")
    rotated = SecretBox(f"{old},{generate_master_key('v2')}")
    assert rotated.open(sealed_old, tenant_id="t") == "s"
    assert rotated.seal("s", tenant_id="t").startswith("v2:")


def test_secret_box_detects_tampering() -> None:
    box = SecretBox(generate_master_key())
    version, _, data = box.seal("s", tenant_id="t").partition(":")
    raw = bytearray(base64.b64decode(data))
    raw[-1] ^= 1
    with pytest.raises(SecretBoxError):
        box.open(f"{version}:{base64.b64encode(bytes(raw)).decode()}", tenant_id="t")


@pytest.mark.parametrize("bad", ["", "v1", "v1:" + base64.b64encode(b"short").decode(), "v 1:abc"])
def test_secret_box_rejects_malformed_master_keys(bad: str) -> None:
    with pytest.raises(ValueError, match=r"master key|XYPR_MASTER_KEY|base64|Incorrect padding"):
        SecretBox(bad)
