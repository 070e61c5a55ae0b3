"""Accounts and login sessions: local admins, Genesys users, and refresh-token rotation with reuse detection."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from xypr.auth.genesys import GenesysUser
from xypr.auth.models import PROVIDER_GENESYS, PROVIDER_LOCAL, RefreshToken, User
from xypr.auth.passwords import check_password_strength, hash_password, needs_rehash, verify_password
from xypr.auth.principal import Principal, Role
from xypr.auth.tokens import issue_access_token, new_refresh_token, refresh_token_hash
from xypr.backends.cache.base import Cache
from xypr.backends.db import Database
from xypr.backends.db.base import as_utc, utcnow
from xypr.core.errors import BadRequest, Conflict, NotFound, Unauthorized
from xypr.core.logging import get_logger
from xypr.tenants.models import Tenant

__all__ = [
    "SessionTokens",
    "authenticate_admin",
    "create_admin",
    "principal_of",
    "refresh_session",
    "revoke_session",
    "session_revoked",
    "set_admin_password",
    "start_session",
    "tenant_by_genesys_org",
    "upsert_genesys_user",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SessionTokens:
    """What a login or a refresh hands out: an access token and the next refresh token of the session."""

    principal: Principal
    access_token: str
    access_expires_at: int
    refresh_token: str
    refresh_expires_at: int


def _normal_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or email.startswith("@") or email.endswith("@"):
        raise BadRequest("email: not an email address", field="email")
    return email


def principal_of(user: User, *, session_id: str | None = None) -> Principal:
    """The caller a user is once logged in."""
    return Principal(
        user_id=user.id,
        role=Role(user.role),
        tenant_id=user.tenant_id,
        email=user.email,
        name=user.name,
        session_id=session_id,
    )


async def create_admin(database: Database, *, email: str, password: str, name: str | None = None) -> User:
    """Create a Xypr administrator (local account, argon2id password); `Conflict` when the email exists."""
    email = _normal_email(email)
    check_password_strength(password)
    user = User(
        provider=PROVIDER_LOCAL,
        external_id=email,
        role=Role.XYPR_ADMIN.value,
        email=email,
        name=name,
        password_hash=hash_password(password),
        status="active",
    )
    try:
        async with database.session() as session:
            if await session.scalar(select(User.id).where(User.provider == PROVIDER_LOCAL, User.external_id == email)):
                raise Conflict(f"email: an administrator {email} already exists", field="email")
            session.add(user)
    except IntegrityError as exc:  # created concurrently
        raise Conflict(f"email: an administrator {email} already exists", field="email") from exc
    return user


async def set_admin_password(database: Database, *, email: str, password: str) -> None:
    """Replace an administrator's password (and end their sessions)."""
    email = _normal_email(email)
    check_password_strength(password)
    async with database.session() as session:
        user = await session.scalar(select(User).where(User.provider == PROVIDER_LOCAL, User.external_id == email))
        if user is None:
            raise NotFound(f"no administrator {email}")
        user.password_hash = hash_password(password)
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


async def authenticate_admin(database: Database, *, email: str, password: str) -> User:
    """The administrator with this email and password; one vague `Unauthorized` for every mismatch."""
    try:
        email = _normal_email(email)
    except BadRequest:
        email = ""
    async with database.session() as session:
        user = await session.scalar(select(User).where(User.provider == PROVIDER_LOCAL, User.external_id == email))
        # Always verify (against a dummy hash when there is no user): no timing oracle on emails.
        if not verify_password(user.password_hash if user else None, password) or user is None:
            raise Unauthorized("wrong email or password")
        if user.status != "active":
            raise Unauthorized("wrong email or password")
        if user.password_hash and needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.last_login_at = utcnow()
    return user


async def tenant_by_genesys_org(database: Database, org_id: str) -> Tenant | None:
    """The tenant bridging this Genesys organisation."""
    async with database.session() as session:
        tenant: Tenant | None = await session.scalar(select(Tenant).where(Tenant.genesys_org_id == org_id))
        return tenant


async def upsert_genesys_user(database: Database, *, tenant_id: str, person: GenesysUser, role: Role) -> User:
    """Record (or update) a Genesys user of a tenant with the role their Genesys roles map to today."""
    for attempt in range(2):
        try:
            async with database.session() as session:
                user = await session.scalar(
                    select(User).where(User.provider == PROVIDER_GENESYS, User.external_id == person.id)
                )
                if user is None:
                    user = User(provider=PROVIDER_GENESYS, external_id=person.id, status="active")
                    session.add(user)
                elif user.tenant_id != tenant_id:
                    # Genesys user ids are unique across organisations; a change means the org was re-bridged.
                    log.warning("auth.genesys_user_moved_tenant", user_id=user.id, tenant_id=tenant_id)
                user.tenant_id = tenant_id
                user.role = role.value
                user.email = person.email
                user.name = person.name
                user.last_login_at = utcnow()
                await session.flush()
                return user
        except IntegrityError:
            if attempt:  # two first logins of one person raced; the second try finds the row
                raise
    raise AssertionError("unreachable")


async def start_session(
    database: Database, key: bytes, user: User, *, access_ttl: int, refresh_ttl: int
) -> SessionTokens:
    """Open a login session for `user`: a new refresh-token family and its first tokens."""
    if user.status != "active":
        raise Unauthorized("this account is disabled")
    family_id = str(uuid.uuid4())
    refresh = new_refresh_token()
    now = utcnow()
    expires = now + timedelta(seconds=refresh_ttl)
    async with database.session() as session:
        # Expired tokens of this user are of no use to anyone: keep the table small.
        await session.execute(
            delete(RefreshToken).where(RefreshToken.user_id == user.id, RefreshToken.expires_at < now)
        )
        session.add(
            RefreshToken(
                token_hash=refresh_token_hash(refresh),
                family_id=family_id,
                user_id=user.id,
                tenant_id=user.tenant_id,
                created_at=now,
                expires_at=expires,
            )
        )
    principal = principal_of(user, session_id=family_id)
    access = issue_access_token(key, principal, ttl=access_ttl)
    return SessionTokens(principal, access.token, access.expires_at, refresh, int(expires.timestamp()))


def _revoked_key(family_id: str) -> str:
    return f"auth:revoked-session:{family_id}"


async def session_revoked(cache: Cache, session_id: str | None) -> bool:
    """True when the session of an access token has been revoked (logout, refresh-token reuse)."""
    return bool(session_id) and await cache.get(_revoked_key(str(session_id))) is not None


async def revoke_session(database: Database, cache: Cache, family_id: str, *, access_ttl: int) -> int:
    """End a session: its refresh tokens stop working, and so do its live access tokens."""
    async with database.session() as session:
        result = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    # Access tokens are not stored; remember the revoked session for as long as one could still be alive.
    await cache.set(_revoked_key(family_id), b"1", ttl=access_ttl + 60)
    return int(getattr(result, "rowcount", 0) or 0)


async def refresh_session(
    database: Database, cache: Cache, key: bytes, refresh: str, *, access_ttl: int, refresh_ttl: int
) -> SessionTokens:
    """Rotate a refresh token: the presented one is spent, the next one is returned with a new access token.

    Presenting a spent token again means a copy exists elsewhere: the whole session is revoked.
    """
    now = utcnow()
    reused_family: str | None = None
    async with database.session() as session:
        row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == refresh_token_hash(refresh)))
        if row is None:
            raise Unauthorized("unknown refresh token")
        if row.revoked_at is not None:
            raise Unauthorized("this session has ended; log in again")
        if as_utc(row.expires_at) <= now:
            raise Unauthorized("refresh token has expired; log in again")
        spent = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
            .values(used_at=now)
        )
        if getattr(spent, "rowcount", 0) != 1:
            reused_family = row.family_id
        else:
            user = await session.get(User, row.user_id)
            if user is None or user.status != "active":
                raise Unauthorized("this account is disabled")
            next_refresh = new_refresh_token()
            expires = now + timedelta(seconds=refresh_ttl)
            session.add(
                RefreshToken(
                    token_hash=refresh_token_hash(next_refresh),
                    family_id=row.family_id,
                    user_id=user.id,
                    tenant_id=user.tenant_id,
                    created_at=now,
                    expires_at=expires,
                )
            )
            principal = principal_of(user, session_id=row.family_id)
    if reused_family is not None:
        revoked = await revoke_session(database, cache, reused_family, access_ttl=access_ttl)
        log.warning("auth.refresh_token_reuse", session_id=reused_family, revoked_tokens=revoked)
        raise Unauthorized("refresh token was already used: the session has been revoked; log in again")
    access = issue_access_token(key, principal, ttl=access_ttl)
    return SessionTokens(principal, access.token, access.expires_at, next_refresh, int(expires.timestamp()))
