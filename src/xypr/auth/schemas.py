"""Bodies of the auth endpoints (requests and answers); none of them ever carries a password back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from xypr.auth.principal import Principal, Role
from xypr.core.apimodel import ApiModel, not_null
from xypr.tenants.schemas import GENESYS_REGIONS

__all__ = [
    "GRANT_PASSWORD",
    "GRANT_REFRESH",
    "GRANT_TOKEN_EXCHANGE",
    "TOKEN_TYPE_ACCESS",
    "InfoView",
    "LoginRequest",
    "LogoutView",
    "PrincipalView",
    "RefreshRequest",
    "SessionView",
    "TenantRef",
    "TokenRequest",
    "TokenResponse",
]

GRANT_PASSWORD = "password"  # noqa: S105 (a protocol name, not a secret)
GRANT_REFRESH = "refresh_token"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a protocol name, not a secret)
TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a protocol name, not a secret)


class LoginRequest(ApiModel):
    """A Xypr administrator's credentials."""

    email: str = Field(min_length=3, max_length=320, examples=["ops@example.com"])
    password: str = Field(min_length=1, max_length=1024, examples=["correct horse battery staple"])


# The token endpoint's requests and answers keep the parameter names of OAuth 2 (RFC 6749, RFC 8693):
# snake_case, the one documented exception to the API's camelCase (see xypr.core.apimodel).


NonEmpty = Annotated[str, StringConstraints(min_length=1)]
# Tokens travel in HTTP headers: printable ASCII without spaces.
Token = Annotated[str, StringConstraints(min_length=1, max_length=8000, pattern=r"^[\x21-\x7e]+$")]
_REGION_ENUM: list[JsonValue] = list(sorted(GENESYS_REGIONS))


def _region(schema: dict[str, Any]) -> None:
    not_null(schema)
    schema["enum"] = _REGION_ENUM


def _grant(grant_type: str, *required: str) -> dict[str, Any]:
    """JSON schema: this grant type, with the fields it needs."""
    return {
        "properties": {
            "grant_type": {"const": grant_type},
            **{name: {"type": "string", "minLength": 1} for name in required if name != "subject_token"},
            **(
                {"subject_token": {"type": "string", "pattern": "^[\\x21-\\x7e]+$"}}
                if "subject_token" in required
                else {}
            ),
        },
        "required": ["grant_type", *required],
    }


class TokenRequest(BaseModel):
    """`POST /auth/token` (form-encoded or JSON), OAuth 2 style (RFC 6749 names)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                _grant(GRANT_PASSWORD, "username", "password"),
                _grant(GRANT_REFRESH, "refresh_token"),
                _grant(GRANT_TOKEN_EXCHANGE, "subject_token"),
            ]
        }
    )

    grant_type: Literal["password", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"] = Field(
        description="password (Xypr admins), refresh_token, or token-exchange (a Genesys user token)"
    )
    username: NonEmpty | None = Field(
        json_schema_extra=not_null, default=None, description="password grant: the administrator's email"
    )
    password: str | None = Field(json_schema_extra=not_null, default=None, description="password grant")
    refresh_token: Token | None = Field(json_schema_extra=not_null, default=None, description="refresh_token grant")
    subject_token: Token | None = Field(
        json_schema_extra=not_null, default=None, description="token-exchange: a Genesys Cloud user access token"
    )
    subject_token_type: Literal["urn:ietf:params:oauth:token-type:access_token"] | None = Field(
        default=None, json_schema_extra=not_null
    )
    region: str | None = Field(
        default=None, description="token-exchange: the Genesys Cloud domain of the user", json_schema_extra=_region
    )


class RefreshRequest(BaseModel):
    """`POST /auth/refresh` for API clients (browsers send the refresh cookie instead); RFC 6749 names."""

    refresh_token: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    """Tokens for an API client: send `Authorization: Bearer <access_token>`; refresh before `expires_in`.

    RFC 6749 names (snake_case), also for the extra members, so the whole answer reads one way.
    """

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a protocol name, not a secret)
    expires_in: int = Field(description="seconds the access token stays valid")
    refresh_token: str = Field(description="single use: each refresh returns the next one")
    refresh_expires_in: int
    role: Role
    tenant_id: str | None


class PrincipalView(ApiModel):
    """Who is calling."""

    user_id: str
    role: Role
    tenant_id: str | None
    email: str | None
    name: str | None

    @classmethod
    def of(cls, principal: Principal) -> PrincipalView:
        """The view of a principal."""
        return cls(
            user_id=principal.user_id,
            role=principal.role,
            tenant_id=principal.tenant_id,
            email=principal.email,
            name=principal.name,
        )


class SessionView(ApiModel):
    """A browser session was opened or renewed; the tokens are in HttpOnly cookies, not here."""

    user: PrincipalView
    csrf_token: str = Field(description="echo it in `X-CSRF-Token` on POST/PUT/PATCH/DELETE (also in `xypr_csrf`)")
    expires_at: datetime = Field(description="when the access cookie expires; then POST /auth/refresh")


class TenantRef(ApiModel):
    """The tenant a user belongs to."""

    id: str
    name: str | None


class InfoView(ApiModel):
    """`GET /auth/info`: the caller, their tenant and how they authenticated."""

    user: PrincipalView
    tenant: TenantRef | None
    session_id: str | None
    authenticated_by: Literal["bearer", "cookie"]


class LogoutView(ApiModel):
    """The session has ended."""

    logged_out: bool
