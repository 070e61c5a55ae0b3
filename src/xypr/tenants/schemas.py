"""The tenant file / API body and the public view of a tenant (which never holds a secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = ["GENESYS_REGIONS", "GenesysSection", "TenantFile", "TenantView", "WhatsAppSection"]

GENESYS_REGIONS = frozenset(
    {
        "mypurecloud.com", "usw2.pure.cloud", "cac1.pure.cloud", "sae1.pure.cloud", "mypurecloud.ie",
        "euw2.pure.cloud", "mypurecloud.de", "euc2.pure.cloud", "mec1.pure.cloud", "aps1.pure.cloud",
        "apse1.pure.cloud", "mypurecloud.com.au", "mypurecloud.jp", "apne2.pure.cloud",
        "apne3.pure.cloud", "use2.us-gov-pure.cloud",
    }
)  # fmt: skip

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Digits = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")]


class GenesysSection(BaseModel):
    """The Genesys Cloud side of a tenant."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(description="Genesys Cloud domain, e.g. usw2.pure.cloud", examples=["usw2.pure.cloud"])
    client_id: Text
    client_secret: Secret
    integration_id: Text
    # Genesys requires more than 15 characters for the outbound webhook signature secret.
    webhook_secret: Annotated[str, StringConstraints(min_length=16, max_length=200)]
    org_id: Text | None = None

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in GENESYS_REGIONS:
            raise ValueError(f"unknown Genesys region; one of: {', '.join(sorted(GENESYS_REGIONS))}")
        return value


class WhatsAppSection(BaseModel):
    """The WhatsApp Business side of a tenant."""

    model_config = ConfigDict(extra="forbid")

    waba_id: Digits
    phone_number_id: Digits
    display_phone_number: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{4,32}$")]
    access_token: Secret
    app_secret: Secret
    verify_token: Secret


class TenantFile(BaseModel):
    """What `xypr tenant create --file` reads and `POST /tenants` takes."""

    model_config = ConfigDict(extra="forbid")

    name: Text
    genesys: GenesysSection
    whatsapp: WhatsAppSection
    settings: dict[str, Any] = Field(default_factory=dict)


class TenantView(BaseModel):
    """A tenant as shown to people and tools: identifiers only, never a secret."""

    id: str
    name: str
    status: str
    genesys: dict[str, str | None]
    whatsapp: dict[str, str]
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
