"""One JSON convention for the whole API: camelCase names, RFC 3339 UTC times with `Z` (the OAuth 2 token
endpoint and the upstream payloads being the documented exceptions)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import embedded_settings
from xypr.app import AppPlan, create_app
from xypr.core.apimodel import ApiModel, camel_path, snake_path
from xypr.services.registry import HTTP_SERVICES

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
# RFC 6749 / RFC 8693 names: the token endpoint's bodies keep them.
OAUTH_SCHEMAS = {"TokenRequest", "TokenResponse", "RefreshRequest"}
# Genesys Open Messaging's own wire format (the outbound transform takes the webhook body as Genesys sends it).
GENESYS_SCHEMAS = {"TransformRequest", "GenesysChannel", "GenesysParty"}
# Validation errors are FastAPI's; ours answer 400 with the ErrorBody, but FastAPI still lists these.
FRAMEWORK_SCHEMAS = {"HTTPValidationError", "ValidationError"}


def _openapi(tmp_path: Path) -> dict[str, Any]:
    app = create_app(embedded_settings(tmp_path), AppPlan(http_services=HTTP_SERVICES))
    document: dict[str, Any] = app.openapi()
    return document


def test_every_schema_of_the_api_names_its_properties_in_camel_case(tmp_path: Path) -> None:
    schemas = _openapi(tmp_path)["components"]["schemas"]
    exempt = OAUTH_SCHEMAS | GENESYS_SCHEMAS | FRAMEWORK_SCHEMAS
    offenders = {
        f"{name}.{prop}"
        for name, schema in schemas.items()
        if name.split("-")[0] not in exempt
        for prop in schema.get("properties", {})
        if not CAMEL.match(prop)
    }
    assert offenders == set()
    assert {"access_token", "token_type", "expires_in", "refresh_token"} <= set(schemas["TokenResponse"]["properties"])


def test_every_query_and_path_parameter_is_camel_case(tmp_path: Path) -> None:
    document = _openapi(tmp_path)
    names = {
        (path, parameter["name"])
        for path, item in document["paths"].items()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] in ("query", "path")
    }
    # The Genesys login callback's parameters are OAuth 2's (RFC 6749 §4.1.2); Meta names its handshake's.
    theirs = {"error_description", "hub.mode", "hub.verify_token", "hub.challenge"}
    assert {name for _path, name in names if not CAMEL.match(name) and name not in theirs} == set()


class _Answer(ApiModel):
    created_at: datetime
    last_seen_at: datetime | None = None


@pytest.mark.parametrize(
    ("given", "written"),
    [
        (datetime(2026, 11, 22, 9, 58, 10), "2026-11-22T09:58:10Z"),  # naive: the databases store UTC
        (datetime(2026, 11, 22, 9, 58, 10, tzinfo=UTC), "2026-11-22T09:58:10Z"),
        (datetime(2026, 11, 22, 11, 58, 10, tzinfo=timezone(timedelta(hours=2))), "2026-11-22T09:58:10Z"),
    ],
)
def test_times_are_answered_in_utc_with_z(given: datetime, written: str) -> None:
    answer = _Answer(created_at=given, last_seen_at=given)
    assert answer.model_dump(mode="json") == {"createdAt": written, "lastSeenAt": written}
    assert answer.model_dump_json() == f'{{"createdAt":"{written}","lastSeenAt":"{written}"}}'


def test_input_is_accepted_in_camel_case_and_in_snake_case() -> None:
    camel = _Answer.model_validate({"createdAt": "2026-11-22T09:58:10Z"})
    snake = _Answer.model_validate_json('{"created_at": "2026-11-22T09:58:10Z"}')
    assert camel == snake
    assert camel.created_at == datetime(2026, 11, 22, 9, 58, 10, tzinfo=UTC)


def test_bodies_are_taken_as_their_schema_says_without_coercion() -> None:
    class _Body(ApiModel):
        count: int
        share: float

    with pytest.raises(ValidationError):
        _Body.model_validate({"count": "5", "share": 0.5})
    with pytest.raises(ValidationError):
        _Body.model_validate({"count": 5, "share": False})
    assert _Body.model_validate({"count": 5, "share": 1}).share == 1.0


def test_field_paths_convert_both_ways() -> None:
    assert camel_path("whatsapp.phone_number_id") == "whatsapp.phoneNumberId"
    assert camel_path("genesys.credentials") == "genesys.credentials"
    assert snake_path("whatsapp.phoneNumberId") == "whatsapp.phone_number_id"
