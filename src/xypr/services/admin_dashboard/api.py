"""The operator API behind the dashboard: overview, message timeline, dead letters, audit log, people.

| endpoint | xypr_admin | tenant_admin | supervisor | agent |
|---|---|---|---|---|
| `GET /ops/overview`, `/messages/timeline`, `/dlq`, `/dlq/{id}`, `/audit` | all tenants | own | own | 403 |
| `POST /dlq/{id}/replay`, `POST /dlq/replay`, `POST /dlq/{id}/discard` | all tenants | own | 403 | 403 |
| `/users…` | yes | 403 | 403 | 403 |
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from xypr.audit.service import list_audit
from xypr.auth.principal import Principal, Role, require_roles
from xypr.deadletters.service import (
    DeadLetterFilter,
    discard_dead_letter,
    find_dead_letters,
    get_dead_letter,
    replay_dead_letter,
    replay_dead_letters,
)
from xypr.monitoring.overview import THRESHOLDS, build_overview
from xypr.services.admin_dashboard.people import (
    add_admin,
    list_people,
    live_sessions,
    reset_admin_password,
    set_person_status,
)
from xypr.services.admin_dashboard.schemas import (
    AuditEntryView,
    AuditPage,
    DeadLetterDetail,
    DeadLetterPage,
    DeadLetterSummary,
    DiscardRequest,
    NewAdmin,
    NewPassword,
    OverviewView,
    PersonView,
    QueueName,
    ReplayFilter,
    ReplayResult,
    SessionList,
    SessionView,
    TimelineView,
)
from xypr.services.deps import RuntimeDep
from xypr.services.openapi import error_responses
from xypr.state.timeline import search_messages

__all__ = ["PATHS", "routers"]

PATHS = ("/ops", "/messages", "/dlq", "/audit", "/users")

Operator = Annotated[Principal, Depends(require_roles(Role.XYPR_ADMIN, Role.TENANT_ADMIN, Role.SUPERVISOR))]
XyprAdmin = Annotated[Principal, Depends(require_roles(Role.XYPR_ADMIN))]

ops = APIRouter(prefix="/ops", tags=["operations"])
DeadLetterIdPath = Annotated[str, Path(alias="deadLetterId")]
UserIdPath = Annotated[str, Path(alias="userId")]
messages = APIRouter(prefix="/messages", tags=["operations"])
dlq = APIRouter(prefix="/dlq", tags=["dead letters"])
audit = APIRouter(prefix="/audit", tags=["audit"])
users = APIRouter(prefix="/users", tags=["users"])


@ops.get("/overview", response_model=OverviewView, summary="Health overview", responses=error_responses(401, 403))
async def overview(runtime: RuntimeDep, principal: Operator) -> OverviewView:
    """Backends, running processes (version, uptime), queue depths and oldest age, messages per minute over the
    last hour, failures by reason, dead letters; each with a state (green / amber / red) by `thresholds`.
    Tenant admins and supervisors get their tenant's messages, failures and dead letters only."""
    return OverviewView.of(await build_overview(runtime, principal), THRESHOLDS)


@messages.get(
    "/timeline", response_model=TimelineView, summary="What happened to a message", responses=error_responses(401, 403)
)
async def timeline(
    runtime: RuntimeDep,
    principal: Operator,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="wamid, Genesys message id, conversation id (ours or Genesys') or a customer's wa_id",
        ),
    ],
) -> TimelineView:
    """One message (by wamid or Genesys message id) with its timeline: received, transformed, sent, delivered,
    read, failed with the reason, dead-lettered. A conversation id or wa_id lists that conversation's latest
    messages (each with `timeline` null: ask again by its id). `found: 0` for an unknown id."""
    return TimelineView.of(await search_messages(runtime, principal, q))


def _filter(
    tenant_id: Annotated[str | None, Query(alias="tenantId")] = None,
    queue: Annotated[QueueName | None, Query()] = None,
    error: Annotated[str | None, Query(max_length=200, description="Part of the error text")] = None,
    older_than_seconds: Annotated[float | None, Query(alias="olderThanSeconds", ge=0)] = None,
) -> DeadLetterFilter:
    return DeadLetterFilter(tenant_id or None, queue or None, error or None, older_than_seconds)


DeadLetterQuery = Annotated[DeadLetterFilter, Depends(_filter)]


@dlq.get("", response_model=DeadLetterPage, summary="List dead letters", responses=error_responses(400, 401, 403))
async def list_dead_letters(
    runtime: RuntimeDep,
    principal: Operator,
    wanted: DeadLetterQuery,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeadLetterPage:
    """Dead letters matching every given filter (tenant, queue, error text, age), oldest first."""
    letters, total = await find_dead_letters(runtime, principal, wanted, limit=limit)
    return DeadLetterPage(items=[DeadLetterSummary.of(letter) for letter in letters], total=total)


@dlq.post(
    "/replay", response_model=ReplayResult, summary="Replay dead letters", responses=error_responses(400, 401, 403)
)
async def replay_matching(body: ReplayFilter, runtime: RuntimeDep, principal: Operator) -> ReplayResult:
    """Replay every dead letter matching the filter (an empty filter: all you may see), each conversation's in
    arrival order. Audited."""
    wanted = DeadLetterFilter(body.tenant_id, body.queue, body.error, body.older_than_seconds)
    return ReplayResult(replayed=await replay_dead_letters(runtime, principal, wanted))


@dlq.get("/{deadLetterId}", response_model=DeadLetterDetail, summary="Inspect a dead letter",
         responses=error_responses(401, 403, 404))  # fmt: skip
async def inspect(dead_letter_id: DeadLetterIdPath, runtime: RuntimeDep, principal: Operator) -> DeadLetterDetail:
    """The dead letter with its error, attempts and payload (credentials redacted)."""
    return DeadLetterDetail.of(await get_dead_letter(runtime, principal, dead_letter_id))


@dlq.post("/{deadLetterId}/replay", response_model=DeadLetterSummary, summary="Replay a dead letter",
          responses=error_responses(401, 403, 404, 503))  # fmt: skip
async def replay(dead_letter_id: DeadLetterIdPath, runtime: RuntimeDep, principal: Operator) -> DeadLetterSummary:
    """Publish it again to its queue (behind whatever its conversation has waiting); it leaves the dead letters.
    Audited."""
    return DeadLetterSummary.of(await replay_dead_letter(runtime, principal, dead_letter_id))


@dlq.post("/{deadLetterId}/discard", response_model=DeadLetterSummary, summary="Discard a dead letter",
          responses=error_responses(400, 401, 403, 404))  # fmt: skip
async def discard(
    dead_letter_id: DeadLetterIdPath, body: DiscardRequest, runtime: RuntimeDep, principal: Operator
) -> DeadLetterSummary:
    """Remove it for good; the reason is required and kept in the audit log."""
    return DeadLetterSummary.of(await discard_dead_letter(runtime, principal, dead_letter_id, reason=body.reason))


@audit.get("", response_model=AuditPage, summary="The audit log", responses=error_responses(401, 403))
async def audit_log(
    runtime: RuntimeDep,
    principal: Operator,
    tenant_id: Annotated[str | None, Query(alias="tenantId")] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. tenant.suspend, dead_letter.discard")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditPage:
    """Who changed what, to which tenant, when — newest first. Tenant people see their tenant's entries."""
    records, total = await list_audit(
        runtime.database, principal, tenant_id=tenant_id, action=action, limit=limit, offset=offset
    )
    return AuditPage(items=[AuditEntryView.of(r) for r in records], total=total, limit=limit, offset=offset)


@users.get("", response_model=list[PersonView], summary="People", responses=error_responses(401, 403))
async def people(
    runtime: RuntimeDep, principal: XyprAdmin, tenant_id: Annotated[str | None, Query(alias="tenantId")] = None
) -> list[PersonView]:
    """Xypr administrators, or (with `tenantId`) the Genesys users of one tenant who have signed in."""
    return [PersonView.of(person) for person in await list_people(runtime, principal, tenant_id=tenant_id)]


@users.post("", response_model=PersonView, status_code=201, summary="Create an administrator",
            responses=error_responses(400, 401, 403, 409))  # fmt: skip
async def create(body: NewAdmin, runtime: RuntimeDep, principal: XyprAdmin) -> PersonView:
    """A new Xypr administrator with a password (at least 12 characters). Audited."""
    return PersonView.of(await add_admin(runtime, principal, email=body.email, password=body.password, name=body.name))


@users.get("/sessions", response_model=SessionList, summary="Who is signed in", responses=error_responses(401, 403))
async def sessions(runtime: RuntimeDep, principal: XyprAdmin) -> SessionList:
    """Sessions that can still be renewed, most recently renewed first."""
    return SessionList(items=[SessionView.of(each) for each in await live_sessions(runtime, principal)])


@users.post("/{userId}/disable", response_model=PersonView, summary="Disable someone",
            responses=error_responses(400, 401, 403, 404, 409))  # fmt: skip
async def disable(user_id: UserIdPath, runtime: RuntimeDep, principal: XyprAdmin) -> PersonView:
    """They can no longer sign in; their sessions end now. Audited."""
    return PersonView.of(await set_person_status(runtime, principal, user_id, active=False))


@users.post("/{userId}/enable", response_model=PersonView, summary="Enable someone again",
            responses=error_responses(401, 403, 404))  # fmt: skip
async def enable(user_id: UserIdPath, runtime: RuntimeDep, principal: XyprAdmin) -> PersonView:
    """They may sign in again. Audited."""
    return PersonView.of(await set_person_status(runtime, principal, user_id, active=True))


@users.post("/{userId}/password", response_model=PersonView, summary="Set an administrator's password",
            responses=error_responses(400, 401, 403, 404))  # fmt: skip
async def password(user_id: UserIdPath, body: NewPassword, runtime: RuntimeDep, principal: XyprAdmin) -> PersonView:
    """A new password (their sessions end). Audited, without the password."""
    return PersonView.of(await reset_admin_password(runtime, principal, user_id, password=body.password))


def routers() -> list[APIRouter]:
    """The operator API's routers."""
    return [ops, messages, dlq, audit, users]
