"""Which Xypr role a Genesys user gets: the tenant's `role_mapping` over their Genesys roles and permissions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xypr.auth.principal import Role

__all__ = ["TENANT_ROLES", "RoleMapping", "RoleRule", "role_for", "tenant_role_mapping"]

# Highest first: a user matching several rules gets the highest role they match.
TENANT_ROLES = (Role.TENANT_ADMIN, Role.SUPERVISOR, Role.AGENT)


class RoleRule(BaseModel):
    """Genesys role names (any case) or permissions (`domain:entity:action`, `*` wildcards) granting a role."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(default_factory=list, examples=[["Master Admin"]])
    permissions: list[str] = Field(default_factory=list, examples=[["conversation:communication:monitor"]])

    def matches(self, role_names: Iterable[str], permissions: Iterable[str]) -> bool:
        """True when the user holds one of the rule's roles or permissions."""
        wanted = {name.casefold() for name in self.roles}
        if any(name.casefold() in wanted for name in role_names):
            return True
        held = list(permissions)
        return any(_permission_matches(rule, have) for rule in self.permissions for have in held)


class RoleMapping(BaseModel):
    """`Tenant.settings["role_mapping"]`; unset fields keep the defaults below (least privilege: agent)."""

    model_config = ConfigDict(extra="forbid")

    tenant_admin: RoleRule = Field(default_factory=lambda: RoleRule(roles=["Master Admin"]))
    supervisor: RoleRule = Field(default_factory=lambda: RoleRule(roles=["Supervisor"]))
    agent: RoleRule = Field(default_factory=RoleRule)
    default: Role | None = Field(
        default=Role.AGENT, description="Role of a user matching no rule; null refuses such users."
    )

    @field_validator("default")
    @classmethod
    def _tenant_role(cls, value: Role | None) -> Role | None:
        if value is Role.XYPR_ADMIN:
            raise ValueError("a Genesys user can never be xypr_admin")
        return value


def _permission_matches(rule: str, held: str) -> bool:
    """Genesys permissions are `domain:entity:action`; `*` in either one stands for any segment."""
    if rule == held:
        return True
    wanted, have = rule.split(":"), held.split(":")
    return len(wanted) == len(have) and all(w == h or "*" in (w, h) for w, h in zip(wanted, have, strict=True))


def role_for(mapping: RoleMapping, role_names: Iterable[str], permissions: Iterable[str]) -> Role | None:
    """The highest tenant role whose rule the user matches, else the mapping's default (None: refused)."""
    names, held = list(role_names), list(permissions)
    for role in TENANT_ROLES:
        rule: RoleRule = getattr(mapping, role.value)
        if rule.matches(names, held):
            return role
    return mapping.default


def tenant_role_mapping(settings: Mapping[str, Any]) -> RoleMapping | None:
    """The tenant's mapping from its settings (defaults when unset); None when the stored value is invalid."""
    try:
        return RoleMapping.model_validate(settings.get("role_mapping") or {})
    except ValidationError:
        return None
