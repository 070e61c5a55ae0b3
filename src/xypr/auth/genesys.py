"""Genesys Cloud user login: PKCE (S256), the authorization-code exchange and `users/me` (roles, organisation)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xypr.core.errors import ServiceUnavailable, Unauthorized

__all__ = [
    "GenesysLogin",
    "GenesysOrganization",
    "GenesysRole",
    "GenesysUser",
    "Pkce",
    "authorize_url",
    "new_pkce",
    "pkce_challenge",
]


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE verifier (kept by us) and its S256 challenge (sent to Genesys)."""

    verifier: str
    challenge: str


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> Pkce:
    """A fresh verifier (86 characters of the unreserved alphabet) and its challenge."""
    verifier = secrets.token_urlsafe(64)
    return Pkce(verifier, pkce_challenge(verifier))


def authorize_url(login_base: str, *, client_id: str, redirect_uri: str, state: str, challenge: str) -> str:
    """Where the browser goes to log in at Genesys (`/oauth/authorize`, code flow with PKCE)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{login_base.rstrip('/')}/oauth/authorize?{query}"


class GenesysRole(BaseModel):
    """A Genesys role held by the user."""

    id: str | None = None
    name: str


class GenesysAuthorization(BaseModel):
    """`authorization` of `users/me?expand=authorization`: roles and flattened permissions."""

    roles: list[GenesysRole] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)


class GenesysOrganization(BaseModel):
    """`organization` of `users/me?expand=organization`."""

    id: str
    name: str | None = None


class GenesysUser(BaseModel):
    """The fields of `GET /api/v2/users/me?expand=authorization,organization` that decide who logs in."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str | None = None
    email: str | None = None
    state: str | None = None
    authorization: GenesysAuthorization = Field(default_factory=GenesysAuthorization)
    organization: GenesysOrganization


class GenesysLogin:
    """Talks to Genesys for a user login; every failure becomes a clear 401 or 503, never a 500."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def exchange_code(
        self, login_base: str, *, client_id: str, code: str, verifier: str, redirect_uri: str
    ) -> str:
        """Trade an authorization code (plus the PKCE verifier) for the user's Genesys access token."""
        try:
            response = await self._http.post(
                f"{login_base.rstrip('/')}/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "client_id": client_id,
                    "code_verifier": verifier,
                },
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"Genesys login unreachable ({type(exc).__name__}); try again") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ServiceUnavailable(f"Genesys login answered HTTP {response.status_code}; try again")
        if not response.is_success:
            raise Unauthorized("Genesys refused the login (authorization code or PKCE verifier not accepted)")
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceUnavailable("Genesys login answered without an access token") from exc
        return str(token)

    async def current_user(self, api_base: str, token: str) -> GenesysUser:
        """`GET /api/v2/users/me?expand=authorization,organization` with the user's token."""
        try:
            response = await self._http.get(
                f"{api_base.rstrip('/')}/api/v2/users/me",
                params={"expand": "authorization,organization"},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"Genesys API unreachable ({type(exc).__name__}); try again") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ServiceUnavailable(f"Genesys API answered HTTP {response.status_code}; try again")
        if response.status_code in (400, 401, 403):
            # 400 is what Genesys answers a client-credentials token here: there is no user behind it.
            raise Unauthorized("Genesys did not accept the token as a user's token")
        if not response.is_success:
            raise ServiceUnavailable(f"Genesys API answered HTTP {response.status_code}")
        try:
            return GenesysUser.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise ServiceUnavailable("Genesys users/me answered without a user and organisation") from exc
