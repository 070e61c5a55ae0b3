"""The tenant file: every problem is named by its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from xypr.core.errors import BadRequest
from xypr.tenants.service import parse_tenant_file

GOOD: dict[str, Any] = {
    "name": "Acme Support",
    "genesys": {"region": "usw2.pure.cloud", "client_id": "cid", "client_secret": "csecret",
                "integration_id": "int-1", "webhook_secret": "0123456789abcdef"},
    "whatsapp": {"waba_id": "419561257915477", "phone_number_id": "106540352242922",
                 "display_phone_number": "+1 555 0100", "access_token": "EAAG", "app_secret": "appsecret",
                 "verify_token": "verify"},
}  # fmt: skip


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    target = spec
    for part in parents:
        target = target[part]
    if value is ...:
        del target[leaf]
    else:
        target[leaf] = value
    return spec


CAMEL: dict[str, Any] = {
    "name": "Acme Support",
    "genesys": {"region": "usw2.pure.cloud", "clientId": "cid", "clientSecret": "csecret",
                "integrationId": "int-1", "webhookSecret": "0123456789abcdef"},
    "whatsapp": {"wabaId": "419561257915477", "phoneNumberId": "106540352242922",
                 "displayPhoneNumber": "+1 555 0100", "accessToken": "EAAG", "appSecret": "appsecret",
                 "verifyToken": "verify"},
}  # fmt: skip


def test_the_documented_file_is_accepted() -> None:
    spec = parse_tenant_file(CAMEL)
    assert spec.whatsapp.phone_number_id == "106540352242922"
    assert spec.genesys.webhook_secret == "0123456789abcdef"


def test_a_file_written_in_snake_case_before_the_camel_case_convention_still_works() -> None:
    assert parse_tenant_file(GOOD) == parse_tenant_file(CAMEL)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("genesys.clientSecret", ..., "genesys.clientSecret: is required"),
        ("genesys.webhookSecret", "short", "genesys.webhookSecret: must be at least 16 characters"),
        ("whatsapp.phoneNumberId", "12ab", "whatsapp.phoneNumberId:"),
        ("whatsapp.colour", "blue", "whatsapp.colour: is not a known field"),
    ],
)
def test_a_bad_camel_case_file_names_the_field_in_camel_case(path: str, value: Any, message: str) -> None:
    spec = copy.deepcopy(CAMEL)
    *parents, leaf = path.split(".")
    target = spec
    for part in parents:
        target = target[part]
    if value is ...:
        del target[leaf]
    else:
        target[leaf] = value
    with pytest.raises(BadRequest) as caught:
        parse_tenant_file(spec)
    assert caught.value.message.startswith(message)
    assert caught.value.field == path


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("name", ..., "name: is required"),
        ("genesys.client_secret", ..., "genesys.client_secret: is required"),
        ("whatsapp.phone_number_id", ..., "whatsapp.phone_number_id: is required"),
        ("genesys.webhook_secret", "short", "genesys.webhook_secret: must be at least 16 characters"),
        ("genesys.region", "mars.pure.cloud", "genesys.region: unknown Genesys region"),
        ("whatsapp.phone_number_id", "12ab", "whatsapp.phone_number_id:"),
        ("whatsapp.colour", "blue", "whatsapp.colour: is not a known field"),
    ],
)
def test_a_bad_file_names_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_tenant_file(_with(path, value))
    assert caught.value.message.startswith(message)
    assert caught.value.field == path
