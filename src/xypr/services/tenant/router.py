"""`/tenants`: onboard, read, update, check, suspend, reactivate and delete tenants.

Who may do what (least privilege):

| | xypr_admin | tenant_admin | supervisor, agent |
|---|---|---|---|
| create, list, suspend, reactivate, delete | yes | no (403) | no (403) |
| read | any tenant | its own (full view) | its own (id, name, status) |
| update, re-run checks | any tenant | its own, not `genesys.org_id` | no (403) |

Another tenant's id answers 404, exactly as an unknown one: a tenant cannot learn that another exists.
Secrets are write-only: accepted in bodies, never in an answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import ValidationError

from xypr.auth.principal import CurrentPrincipal, Principal, Role, require_roles
from xypr.auth.roles import RoleMapping
from xypr.core.errors import BadRequest, NotFound
from xypr.services.deps import MAX_OFFSET, RuntimeDep
from xypr.services.openapi import error_responses
from xypr.services.tenant.lifecycle import (
    check_tenant,
    delete_tenant,
    onboard_tenant,
    reactivate_tenant,
    suspend_tenant,
    update_tenant,
)
from xypr.tenants.parking import parked_counts
from xypr.tenants.schemas import (
    TenantCreate,
    TenantPage,
    TenantResumed,
    TenantSummary,
    TenantUpdate,
    TenantView,
)
from xypr.tenants.service import get_tenant, list_tenants, tenant_view

__all__ = ["router"]

router = APIRouter(prefix="/tenants", tags=["tenants"])

TenantId = Annotated[str, Path(alias="tenantId", description="The tenant's id")]
XyprAdmin = Annotated[Principal, Depends(require_roles(Role.XYPR_ADMIN))]
TenantAdmin = Annotated[Principal, Depends(require_roles(Role.XYPR_ADMIN, Role.TENANT_ADMIN))]


def _in_scope(principal: Principal, tenant_id: str) -> None:
    """404 for a tenant the caller may not see (indistinguishable from one that does not exist)."""
    if not principal.can_access_tenant(tenant_id):
        raise NotFound(f"no tenant {tenant_id}")


def _check_role_mapping(settings: dict[str, Any] | None) -> None:
    """A `settings.role_mapping` that the login could not use is refused now, naming the field."""
    if not settings or "role_mapping" not in settings:
        return
    try:
        RoleMapping.model_validate(settings["role_mapping"])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["settings", "role_mapping", *(str(part) for part in first["loc"])])
        raise BadRequest(f"{where}: {first['msg']}", field=where) from exc


async def _view(runtime: RuntimeDep, tenant_id: str) -> TenantView:
    tenant = await get_tenant(runtime.database, tenant_id)
    parked = await parked_counts(runtime.database, [tenant_id])
    return tenant_view(tenant, parked_events=parked.get(tenant_id, 0))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantView,
    summary="Onboard a tenant",
    responses=error_responses(400, 401, 403, 409),
)
async def create(body: TenantCreate, runtime: RuntimeDep, _admin: XyprAdmin) -> TenantView:
    """Create a tenant from the tenant file (Xypr admins).

    With `setup`, Xypr first subscribes the Meta app to the WABA and/or creates the Genesys Open
    Messaging integration (webhook `XYPR_PUBLIC_URL/webhook/genesys`, a generated secret), waiting
    until Genesys reports it `Completed`; if a setup step fails nothing is created and the 409 body
    carries `checks`. Then the onboarding checks run (Genesys credentials fetch a token, the
    integration exists and posts to us, the WhatsApp token can read the phone number); their results
    are returned in `checks`, field by field, but do not block the creation.
    """
    _check_role_mapping(body.settings)
    tenant = await onboard_tenant(runtime, body, actor=_admin)
    return tenant_view(tenant)


@router.get(
    "",
    response_model=TenantPage,
    summary="List tenants",
    responses=error_responses(400, 401, 403),
)
async def list_all(
    runtime: RuntimeDep,
    _admin: XyprAdmin,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Tenants to skip")] = 0,
    status_: Annotated[
        Literal["active", "suspended", "resuming"] | None,
        Query(alias="status", description="Only tenants in this status"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Search: part of the name, or a phone_number_id, WABA id or Genesys "
            "org id / integration id (exact)",
        ),
    ] = None,
) -> TenantPage:
    """Every tenant (or those matching `q`), oldest first, a page at a time, with the total (Xypr admins)."""
    tenants, total = await list_tenants(runtime.database, limit=limit, offset=offset, status=status_, search=q)
    parked = await parked_counts(runtime.database, [tenant.id for tenant in tenants])
    items = [tenant_view(tenant, parked_events=parked.get(tenant.id, 0)) for tenant in tenants]
    return TenantPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{tenantId}",
    response_model=TenantView | TenantSummary,
    summary="Read a tenant",
    responses=error_responses(401, 404),
)
async def read(tenant_id: TenantId, runtime: RuntimeDep, principal: CurrentPrincipal) -> TenantView | TenantSummary:
    """The tenant without any secret; supervisors and agents get only its id, name and status."""
    _in_scope(principal, tenant_id)
    view = await _view(runtime, tenant_id)
    if principal.role in (Role.XYPR_ADMIN, Role.TENANT_ADMIN):
        return view
    return TenantSummary(id=view.id, name=view.name, status=view.status)


@router.patch(
    "/{tenantId}",
    response_model=TenantView,
    summary="Update a tenant",
    responses=error_responses(400, 401, 403, 404, 409),
)
async def patch(tenant_id: TenantId, body: TenantUpdate, runtime: RuntimeDep, principal: TenantAdmin) -> TenantView:
    """Change the fields given (same fields as the tenant file); secrets are re-sealed, never returned.

    The onboarding checks run again and are returned. A tenant admin may not change `genesys.org_id`,
    and may change `whatsapp.phone_number_id` or `genesys.integration_id` only when the tenant's
    credentials pass the matching check (409 `onboarding_failed` otherwise, nothing changed).
    """
    _in_scope(principal, tenant_id)
    _check_role_mapping(body.settings)
    await update_tenant(runtime, tenant_id, body, platform_admin=principal.is_platform_admin, actor=principal)
    return await _view(runtime, tenant_id)


@router.post(
    "/{tenantId}/widget/install",
    summary="Install the agent widget in the tenant's Genesys organisation",
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def install_agent_widget(tenant_id: TenantId, runtime: RuntimeDep, principal: TenantAdmin) -> dict[str, Any]:
    """Create (or update) and enable the Interaction Widget pointing at this Xypr's `/widget`."""
    from xypr.services.agent_widget.install import install_widget

    _in_scope(principal, tenant_id)
    tenant = await runtime.tenants.by_id(tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id}")
    done = await install_widget(runtime, tenant)
    return {"integrationId": done.integration_id, "url": done.url, "state": done.state, "created": done.created}


@router.post(
    "/{tenantId}/checks",
    response_model=TenantView,
    summary="Run the onboarding checks again",
    responses=error_responses(401, 403, 404),
)
async def run_checks(tenant_id: TenantId, runtime: RuntimeDep, principal: TenantAdmin) -> TenantView:
    """Check the stored credentials against Genesys and Meta again; the results are kept and returned."""
    _in_scope(principal, tenant_id)
    await check_tenant(runtime, tenant_id)
    return await _view(runtime, tenant_id)


@router.post(
    "/{tenantId}/suspend",
    response_model=TenantView,
    summary="Suspend a tenant",
    responses=error_responses(401, 403, 404),
)
async def suspend(tenant_id: TenantId, runtime: RuntimeDep, _admin: XyprAdmin) -> TenantView:
    """Stop processing the tenant: its webhooks are still acknowledged, and parked until reactivation."""
    await suspend_tenant(runtime, tenant_id, actor=_admin)
    return await _view(runtime, tenant_id)


@router.post(
    "/{tenantId}/reactivate",
    response_model=TenantResumed,
    summary="Reactivate a suspended tenant",
    responses=error_responses(401, 403, 404, 409, 503),
)
async def reactivate(tenant_id: TenantId, runtime: RuntimeDep, _admin: XyprAdmin) -> TenantResumed:
    """Republish the parked webhook events in the order they arrived, then process the tenant again.

    503 when the broker is down or events keep arriving past the time limit: the tenant stays
    `resuming` (webhooks keep being parked, nothing is lost); call again.
    """
    _tenant, resumed = await reactivate_tenant(runtime, tenant_id, actor=_admin)
    return TenantResumed(tenant=await _view(runtime, tenant_id), resumed_events=resumed)


@router.delete(
    "/{tenantId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a suspended tenant",
    responses=error_responses(401, 403, 404, 409),
)
async def remove(tenant_id: TenantId, runtime: RuntimeDep, _admin: XyprAdmin) -> Response:
    """Delete the tenant with its users, conversations, messages and parked events (suspend it first)."""
    await delete_tenant(runtime, tenant_id, actor=_admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
