"""Our own tokens: short-lived HS256 access JWTs and opaque refresh tokens (only their hash is stored)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from xypr.auth.principal import Principal, Role
from xypr.core.errors import Unauthorized

__all__ = [
    "ISSUER",
    "IssuedAccessToken",
    "issue_access_token",
    "new_refresh_token",
    "read_access_token",
    "refresh_token_hash",
]

ISSUER = "xypr"
_ALGORITHM = "HS256"
# Opaque refresh tokens start with this, so a leaked one is recognisable in scanners and logs.
_REFRESH_PREFIX = "xrt_"


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    """A signed access token and when it expires (Unix seconds)."""

    token: str
    expires_at: int
    jti: str


def issue_access_token(key: bytes, principal: Principal, *, ttl: int, now: float | None = None) -> IssuedAccessToken:
    """Sign an access token for `principal` (claims sub, role, tenant, sid, exp, iat, jti)."""
    issued_at = int(time.time() if now is None else now)
    jti = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": principal.user_id,
        "role": principal.role.value,
        "tenant": principal.tenant_id,
        "sid": principal.session_id,
        "email": principal.email,
        "name": principal.name,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": jti,
    }
    return IssuedAccessToken(jwt.encode(claims, key, algorithm=_ALGORITHM), issued_at + ttl, jti)


def read_access_token(key: bytes, token: str) -> Principal:
    """The principal of a valid access token; `Unauthorized` when expired, forged or malformed."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "jti", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("access token has expired; refresh it or log in again") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid access token") from exc
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise Unauthorized("invalid access token") from exc
    tenant = claims.get("tenant")
    if role is not Role.XYPR_ADMIN and not tenant:
        raise Unauthorized("invalid access token")
    return Principal(
        user_id=str(claims["sub"]),
        role=role,
        tenant_id=str(tenant) if tenant else None,
        email=claims.get("email"),
        name=claims.get("name"),
        session_id=claims.get("sid"),
    )


def new_refresh_token() -> str:
    """A fresh opaque refresh token (256 random bits)."""
    return _REFRESH_PREFIX + secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    """What the database stores for a refresh token: SHA-256 suffices for 256 random bits (no guessing)."""
    return hashlib.sha256(token.encode()).hexdigest()
