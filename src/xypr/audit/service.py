"""Write and read the audit log; readers see only their own tenant's entries unless they are Xypr admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from xypr.audit.models import AuditEntry
from xypr.auth.principal import Principal
from xypr.backends.db import Database
from xypr.backends.db.base import as_utc, utcnow
from xypr.core.logging import get_logger

__all__ = ["AuditRecord", "list_audit", "record_audit"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit entry as read back."""

    id: str
    at: datetime
    actor: str
    actor_role: str
    tenant_id: str | None
    action: str
    target: str | None
    details: dict[str, Any]


async def record_audit(
    database: Database,
    actor: Principal | None,
    action: str,
    *,
    tenant_id: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry (`actor` None: the command line). Callers pass facts, never secrets."""
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor.user_id if actor else None,
        actor=(actor.email or actor.name or actor.user_id) if actor else "cli",
        actor_role=actor.role.value if actor else "operator",
        tenant_id=tenant_id,
        action=action,
        target=target,
        details=details or None,
    )
    async with database.session() as session:
        session.add(entry)
    log.info("audit", action=action, tenant_id=tenant_id, target=target, actor_id=entry.actor_id)


async def list_audit(
    database: Database,
    principal: Principal,
    *,
    tenant_id: str | None = None,
    action: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditRecord], int]:
    """Newest first, a page at a time, with the total; tenant people see only their tenant's entries."""
    if not principal.is_platform_admin:
        tenant_id = principal.tenant_id or "-"
    query = select(AuditEntry)
    counting = select(func.count()).select_from(AuditEntry)
    if tenant_id:
        query = query.where(AuditEntry.tenant_id == tenant_id)
        counting = counting.where(AuditEntry.tenant_id == tenant_id)
    if action:
        query = query.where(AuditEntry.action == action)
        counting = counting.where(AuditEntry.action == action)
    async with database.session() as session:
        total = int(await session.scalar(counting) or 0)
        rows = (await session.scalars(query.order_by(AuditEntry.at.desc()).limit(limit).offset(offset))).all()
    return [
        AuditRecord(
            id=row.id,
            at=as_utc(row.at),
            actor=row.actor,
            actor_role=row.actor_role,
            tenant_id=row.tenant_id,
            action=row.action,
            target=row.target,
            details=dict(row.details or {}),
        )
        for row in rows
    ], total
