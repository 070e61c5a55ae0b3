"""The authenticated caller of an API request, and the FastAPI dependencies that require one.

The gateway's authentication middleware puts a `Principal` on `request.state.principal` for a valid
bearer token or session cookie; routes declare what they need with `CurrentPrincipal` or
`require_roles(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request

from xypr.core.errors import Forbidden, Unauthorized

__all__ = ["CurrentPrincipal", "Principal", "Role", "current_principal", "require_roles"]


class Role(StrEnum):
    """Roles, from the platform down to one tenant's agents."""

    XYPR_ADMIN = "xypr_admin"
    TENANT_ADMIN = "tenant_admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a Xypr admin (no tenant) or a person of one tenant."""

    user_id: str
    role: Role
    tenant_id: str | None = None
    email: str | None = None
    name: str | None = None
    # The login session (refresh-token family) the caller's access token belongs to.
    session_id: str | None = None

    @property
    def is_platform_admin(self) -> bool:
        """True for Xypr administrators, who may act on every tenant."""
        return self.role is Role.XYPR_ADMIN

    def can_access_tenant(self, tenant_id: str) -> bool:
        """True when this caller may read or change data of `tenant_id`."""
        return self.is_platform_admin or self.tenant_id == tenant_id


def current_principal(request: Request) -> Principal:
    """The authenticated caller; 401 when the request carries no valid credentials."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise Unauthorized("authentication required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that admits only callers with one of `roles` (403 otherwise)."""
    allowed = frozenset(roles)

    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"this needs one of the roles: {', '.join(sorted(allowed))}")
        return principal

    return check
