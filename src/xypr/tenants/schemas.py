"""The tenant file / API body and the public view of a tenant (which never holds a secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, JsonValue, StringConstraints, field_validator

from xypr.core.apimodel import ApiModel, not_null

__all__ = [
    "GENESYS_REGIONS",
    "CheckResult",
    "GenesysPatch",
    "GenesysSection",
    "GenesysView",
    "SetupOptions",
    "TenantCreate",
    "TenantFile",
    "TenantPage",
    "TenantResumed",
    "TenantSummary",
    "TenantUpdate",
    "TenantView",
    "WhatsAppPatch",
    "WhatsAppSection",
    "WhatsAppView",
    "header_safe",
    "known_region",
]

GENESYS_REGIONS = frozenset(
    {
        "mypurecloud.com", "usw2.pure.cloud", "cac1.pure.cloud", "sae1.pure.cloud", "mypurecloud.ie",
        "euw2.pure.cloud", "mypurecloud.de", "euc2.pure.cloud", "mec1.pure.cloud", "aps1.pure.cloud",
        "apse1.pure.cloud", "mypurecloud.com.au", "mypurecloud.jp", "apne2.pure.cloud",
        "apne3.pure.cloud", "use2.us-gov-pure.cloud",
    }
)  # fmt: skip

# `pattern` says in the schema what stripping then `min_length` enforce: something besides white space.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S")]
# Secrets travel in HTTP headers (Bearer tokens, Basic auth) and signatures: printable ASCII only.
Secret = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[\x20-\x7e]+$")]


def header_safe(value: str) -> bool:
    """True when `value` can go in an HTTP header as a credential: visible ASCII, no spaces."""
    return bool(value) and value.isascii() and value.isprintable() and " " not in value


Digits = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")]
# An OAuth client id travels in the Basic authorization header: visible ASCII, no spaces.
ClientId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]
# Genesys requires more than 15 characters for the outbound webhook signature secret.
WebhookSecret = Annotated[str, StringConstraints(min_length=16, max_length=200, pattern=r"^[\x20-\x7e]+$")]
DisplayPhone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{4,32}$")]


# The regions as a JSON schema `enum` (a list of JSON values, for the schema's type).
_REGION_ENUM: list[JsonValue] = list(sorted(GENESYS_REGIONS))


def _region_not_null(schema: dict[str, Any]) -> None:
    not_null(schema)
    schema["enum"] = _REGION_ENUM


def known_region(value: str) -> str:
    """The region normalised (lower case); `ValueError` naming the known ones otherwise."""
    value = value.strip().lower()
    if value not in GENESYS_REGIONS:
        raise ValueError(f"unknown Genesys region; one of: {', '.join(sorted(GENESYS_REGIONS))}")
    return value


class GenesysSection(ApiModel):
    """The Genesys Cloud side of a tenant."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(
        description="Genesys Cloud domain, e.g. usw2.pure.cloud",
        examples=["usw2.pure.cloud"],
        json_schema_extra={"enum": _REGION_ENUM},
    )
    client_id: ClientId
    client_secret: Secret
    integration_id: Text
    webhook_secret: WebhookSecret
    org_id: Text | None = None

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        return known_region(value)


class WhatsAppSection(ApiModel):
    """The WhatsApp Business side of a tenant."""

    model_config = ConfigDict(extra="forbid")

    waba_id: Digits
    phone_number_id: Digits
    display_phone_number: DisplayPhone
    access_token: Secret
    app_secret: Secret
    verify_token: Secret


class TenantFile(ApiModel):
    """What `xypr tenant create --file` reads and `POST /tenants` takes (camelCase; snake_case accepted too)."""

    model_config = ConfigDict(extra="forbid")

    name: Text
    genesys: GenesysSection
    whatsapp: WhatsAppSection
    settings: dict[str, Any] = Field(default_factory=dict)


class CheckResult(ApiModel):
    """The outcome of one onboarding check or setup step."""

    ok: bool
    message: str


class GenesysView(ApiModel):
    """The Genesys side of a tenant, without its secrets."""

    region: str
    client_id: str
    integration_id: str
    org_id: str | None


class WhatsAppView(ApiModel):
    """The WhatsApp side of a tenant, without its secrets."""

    waba_id: str
    phone_number_id: str
    display_phone_number: str


class TenantView(ApiModel):
    """A tenant as shown to people and tools: identifiers only, never a secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b6f3c1e-8d4a-4c55-9a51-2f1f6f0e9b7d",
                    "name": "Acme Support",
                    "status": "active",
                    "genesys": {
                        "region": "usw2.pure.cloud",
                        "clientId": "7de3af06-c0b3-4f9b-af45-72f4a1403797",
                        "integrationId": "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11",
                        "orgId": None,
                    },
                    "whatsapp": {
                        "wabaId": "102290129340398",
                        "phoneNumberId": "106540352242922",
                        "displayPhoneNumber": "+1 555 0100",
                    },
                    "settings": {},
                    "checks": {
                        "genesys.credentials": {"ok": True, "message": "client credentials accepted"},
                        "genesys.integrationId": {"ok": True, "message": "integration exists (Completed)"},
                        "whatsapp.accessToken": {"ok": True, "message": "the token can read +1 555 0100"},
                    },
                    "checkedAt": "2026-11-22T10:00:00Z",
                    "parkedEvents": 0,
                    "createdAt": "2026-11-22T10:00:00Z",
                    "updatedAt": "2026-11-22T10:00:00Z",
                }
            ]
        }
    )

    id: str
    name: str
    status: str = Field(description="active | suspended (webhooks parked) | resuming (parked events replaying)")
    genesys: GenesysView
    whatsapp: WhatsAppView
    settings: dict[str, Any]
    checks: dict[str, CheckResult] = Field(
        default_factory=dict, description="The last onboarding checks, by the field they check (`whatsapp.accessToken`)"
    )
    checked_at: datetime | None = None
    parked_events: int = Field(default=0, description="Webhook events waiting for reactivation")
    created_at: datetime
    updated_at: datetime


class TenantSummary(ApiModel):
    """What agents and supervisors may see of their own tenant."""

    id: str
    name: str
    status: str


class TenantPage(ApiModel):
    """One page of tenants, with the total across all pages."""

    items: list[TenantView]
    total: int
    limit: int
    offset: int


class TenantResumed(ApiModel):
    """A reactivated tenant and how many parked webhook events were republished, in arrival order."""

    tenant: TenantView
    resumed_events: int


class SetupOptions(ApiModel):
    """One-step setup done before the tenant is created (each step must succeed, or nothing is created)."""

    model_config = ConfigDict(extra="forbid")

    create_integration: bool = Field(
        default=False,
        description="Create the Open Messaging integration in Genesys with our webhook URL and a generated "
        "secret (then `genesys.integrationId` and `genesys.webhookSecret` must be left out)",
    )
    subscribe_app: bool = Field(default=False, description="Subscribe the Meta app to the WABA's webhooks")
    integration_name: Text | None = Field(default=None, description="Name of the new integration (default: tenant)")


class GenesysCreateSection(GenesysSection):
    """The Genesys side at creation: the integration may be created by the setup step instead."""

    integration_id: Text | None = None  # type: ignore[assignment]
    webhook_secret: WebhookSecret | None = None  # type: ignore[assignment]


class TenantCreate(ApiModel):
    """`POST /tenants`: the tenant file, plus the optional one-step setup."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme Support",
                    "genesys": {
                        "region": "usw2.pure.cloud",
                        "clientId": "7de3af06-c0b3-4f9b-af45-72f4a1403797",
                        "clientSecret": "the OAuth client secret",
                        "integrationId": "5e3c7a52-0d1b-4f5e-9a61-7c2b8d9e0f11",
                        "webhookSecret": "at least sixteen characters",
                    },
                    "whatsapp": {
                        "wabaId": "102290129340398",
                        "phoneNumberId": "106540352242922",
                        "displayPhoneNumber": "+1 555 0100",
                        "accessToken": "EAAGm0PX4ZCpsBA",
                        "appSecret": "the Meta app secret",
                        "verifyToken": "a verify token of your choice",
                    },
                },
                {
                    "name": "Acme Support (one-step setup)",
                    "genesys": {
                        "region": "usw2.pure.cloud",
                        "clientId": "7de3af06-c0b3-4f9b-af45-72f4a1403797",
                        "clientSecret": "the OAuth client secret",
                    },
                    "whatsapp": {
                        "wabaId": "102290129340398",
                        "phoneNumberId": "106540352242922",
                        "displayPhoneNumber": "+1 555 0100",
                        "accessToken": "EAAGm0PX4ZCpsBA",
                        "appSecret": "the Meta app secret",
                        "verifyToken": "a verify token of your choice",
                    },
                    "setup": {"createIntegration": True, "subscribeApp": True},
                },
            ],
            # Either the integration is given (id and secret), or the setup creates it (and neither is given).
            "anyOf": [
                {
                    "properties": {
                        "genesys": {
                            "required": ["integrationId", "webhookSecret"],
                            "properties": {"integrationId": {"type": "string"}, "webhookSecret": {"type": "string"}},
                        },
                        "setup": {"properties": {"createIntegration": {"const": False}}},
                    }
                },
                {
                    "required": ["setup"],
                    "properties": {
                        "genesys": {
                            "properties": {"integrationId": {"type": "null"}, "webhookSecret": {"type": "null"}}
                        },
                        "setup": {
                            "required": ["createIntegration"],
                            "properties": {"createIntegration": {"const": True}},
                        },
                    },
                },
            ],
        },
    )

    name: Text
    genesys: GenesysCreateSection
    whatsapp: WhatsAppSection
    settings: dict[str, Any] = Field(default_factory=dict)
    setup: SetupOptions = Field(default_factory=SetupOptions)


class GenesysPatch(ApiModel):
    """Changes to the Genesys side; absent fields keep their value, secrets are write-only."""

    model_config = ConfigDict(extra="forbid")

    # Absent keeps the value; null is refused (except for `orgId`), so the schema offers no null.
    region: str | None = Field(default=None, json_schema_extra=_region_not_null)
    client_id: ClientId | None = Field(default=None, json_schema_extra=not_null)
    client_secret: Secret | None = Field(default=None, json_schema_extra=not_null)
    integration_id: Text | None = Field(default=None, json_schema_extra=not_null)
    webhook_secret: WebhookSecret | None = Field(default=None, json_schema_extra=not_null)
    org_id: Text | None = Field(default=None, description="null clears it; only Xypr admins may change it")

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        return known_region(value) if value is not None else None


class WhatsAppPatch(ApiModel):
    """Changes to the WhatsApp side; absent fields keep their value, secrets are write-only."""

    model_config = ConfigDict(extra="forbid")

    waba_id: Digits | None = Field(default=None, json_schema_extra=not_null)
    phone_number_id: Digits | None = Field(default=None, json_schema_extra=not_null)
    display_phone_number: DisplayPhone | None = Field(default=None, json_schema_extra=not_null)
    access_token: Secret | None = Field(default=None, json_schema_extra=not_null)
    app_secret: Secret | None = Field(default=None, json_schema_extra=not_null)
    verify_token: Secret | None = Field(default=None, json_schema_extra=not_null)


class TenantUpdate(ApiModel):
    """`PATCH /tenants/{id}`: only the fields given change; `settings` is replaced as a whole."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "Acme Customer Care", "whatsapp": {"accessToken": "EAAGm0PX4ZCps (a new long-lived token)"}}
            ]
        },
    )

    name: Text | None = Field(default=None, json_schema_extra=not_null)
    # Absent keeps the value; null is refused (400), so the schema offers no null.
    genesys: GenesysPatch | None = Field(default=None, json_schema_extra=not_null)
    whatsapp: WhatsAppPatch | None = Field(default=None, json_schema_extra=not_null)
    settings: dict[str, Any] | None = Field(default=None, json_schema_extra=not_null)
