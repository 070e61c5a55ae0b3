"""People administration: Xypr administrators (create, disable, new password), tenant users, live sessions.

Only Xypr administrators manage people; every change is audited. Disabling someone ends their sessions
at once (their refresh tokens stop working and their live access tokens are refused by the gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from xypr.audit.service import record_audit
from xypr.auth.models import PROVIDER_LOCAL, RefreshToken, User
from xypr.auth.principal import Principal
from xypr.auth.service import create_admin, revoke_session, set_admin_password
from xypr.backends.db.base import as_utc, utcnow
from xypr.core.errors import BadRequest, Conflict, Forbidden, NotFound
from xypr.runtime import Runtime

__all__ = [
    "LiveSession",
    "Person",
    "add_admin",
    "list_people",
    "live_sessions",
    "reset_admin_password",
    "set_person_status",
]


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who can sign in: a Xypr admin (local) or a tenant's Genesys user."""

    id: str
    provider: str
    role: str
    tenant_id: str | None
    email: str | None
    name: str | None
    status: str
    last_login_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A signed-in session: whose, when it was last renewed (or opened), until when it can be renewed."""

    session_id: str
    user_id: str
    email: str | None
    name: str | None
    role: str
    tenant_id: str | None
    last_refresh_at: datetime
    expires_at: datetime


def _platform_only(principal: Principal) -> None:
    if not principal.is_platform_admin:
        raise Forbidden("managing people is for Xypr administrators")


def _person(user: User) -> Person:
    return Person(
        id=user.id, provider=user.provider, role=user.role, tenant_id=user.tenant_id, email=user.email,
        name=user.name, status=user.status, created_at=as_utc(user.created_at),
        last_login_at=as_utc(user.last_login_at) if user.last_login_at else None,
    )  # fmt: skip


async def list_people(runtime: Runtime, principal: Principal, *, tenant_id: str | None = None) -> list[Person]:
    """Xypr admins (no tenant given) or one tenant's people, by email."""
    _platform_only(principal)
    query = select(User)
    query = query.where(User.tenant_id == tenant_id) if tenant_id else query.where(User.provider == PROVIDER_LOCAL)
    async with runtime.database.session() as session:
        users = (await session.scalars(query.order_by(User.email, User.id).limit(500))).all()
    return [_person(user) for user in users]


async def add_admin(runtime: Runtime, principal: Principal, *, email: str, password: str, name: str | None) -> Person:
    """Create a Xypr administrator (audited)."""
    _platform_only(principal)
    user = await create_admin(runtime.database, email=email, password=password, name=name or None)
    await record_audit(runtime.database, principal, "user.create", target=user.email, details={"role": user.role})
    return _person(user)


async def _user(runtime: Runtime, user_id: str) -> User:
    async with runtime.database.session() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def set_person_status(runtime: Runtime, principal: Principal, user_id: str, *, active: bool) -> Person:
    """Enable or disable someone (disabling ends their sessions); nobody disables themselves."""
    _platform_only(principal)
    if user_id == principal.user_id and not active:
        raise Conflict("you cannot disable yourself (ask another administrator)")
    await _user(runtime, user_id)
    async with runtime.database.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        user.status = "active" if active else "disabled"
        families = (
            (
                await session.scalars(
                    select(RefreshToken.family_id)
                    .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                    .distinct()
                )
            ).all()
            if not active
            else []
        )
    for family in families:
        await revoke_session(
            runtime.database, runtime.cache, family, access_ttl=runtime.settings.access_token_ttl_seconds
        )
    updated = await _user(runtime, user_id)
    await record_audit(
        runtime.database, principal, "user.enable" if active else "user.disable", tenant_id=updated.tenant_id,
        target=updated.email or updated.id, details={"ended_sessions": len(families)},
    )  # fmt: skip
    return _person(updated)


async def reset_admin_password(runtime: Runtime, principal: Principal, user_id: str, *, password: str) -> Person:
    """Give an administrator a new password (their sessions end); audited without the password."""
    _platform_only(principal)
    user = await _user(runtime, user_id)
    if user.provider != PROVIDER_LOCAL or not user.email:
        raise BadRequest("only Xypr administrators have a password here (Genesys users sign in with Genesys)")
    await set_admin_password(runtime.database, email=user.email, password=password)
    await record_audit(runtime.database, principal, "user.reset_password", target=user.email)
    return _person(await _user(runtime, user_id))


async def live_sessions(runtime: Runtime, principal: Principal) -> list[LiveSession]:
    """Sessions with a usable refresh token, newest activity first (who is signed in)."""
    _platform_only(principal)
    now = utcnow()
    async with runtime.database.session() as session:
        rows = (
            await session.execute(
                select(
                    RefreshToken.family_id,
                    RefreshToken.user_id,
                    func.max(RefreshToken.created_at),
                    func.max(RefreshToken.expires_at),
                )
                .where(RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > now, RefreshToken.used_at.is_(None))
                .group_by(RefreshToken.family_id, RefreshToken.user_id)
            )
        ).all()
        users = {
            user.id: user
            for user in (await session.scalars(select(User).where(User.id.in_({row[1] for row in rows})))).all()
        }
    found = [
        LiveSession(
            session_id=family,
            user_id=user_id,
            email=users[user_id].email if user_id in users else None,
            name=users[user_id].name if user_id in users else None,
            role=users[user_id].role if user_id in users else "?",
            tenant_id=users[user_id].tenant_id if user_id in users else None,
            last_refresh_at=as_utc(last),
            expires_at=as_utc(expires),
        )
        for family, user_id, last, expires in rows
    ]
    return sorted(found, key=lambda each: each.last_refresh_at, reverse=True)
