"""The dashboard's pages under `/admin`: server-rendered, htmx for actions, server-sent events for live figures.

Every page calls the same role-checked service functions as the JSON API (`/ops`, `/dlq`, `/audit`,
`/users`, `/tenants`); nothing here decides who may see what on its own beyond choosing what to show.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from xypr.audit.service import list_audit
from xypr.auth.cookies import REFRESH_COOKIE, clear_session_cookies
from xypr.auth.principal import Principal, Role
from xypr.auth.roles import RoleMapping, RoleRule
from xypr.auth.service import revoke_session
from xypr.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, XyprError
from xypr.deadletters.service import (
    DeadLetterFilter,
    discard_dead_letter,
    find_dead_letters,
    get_dead_letter,
    replay_dead_letter,
    replay_dead_letters,
)
from xypr.monitoring.overview import THRESHOLDS, Overview, build_overview
from xypr.services.admin_dashboard.drafts import my_drafts
from xypr.services.admin_dashboard.people import (
    add_admin,
    list_people,
    live_sessions,
    reset_admin_password,
    set_person_status,
)
from xypr.services.admin_dashboard.rendering import PageRoute, render, viewer
from xypr.services.admin_dashboard.wizard import router as wizard_router
from xypr.services.deps import RuntimeDep
from xypr.services.tenant.lifecycle import check_tenant, delete_tenant, reactivate_tenant, suspend_tenant, update_tenant
from xypr.services.tenant.operations import (
    check_webhook_verification,
    genesys_token_status,
    refresh_genesys_token,
    webhook_help,
    whatsapp_number_status,
)
from xypr.state.timeline import search_messages
from xypr.tenants.models import TENANT_STATUSES
from xypr.tenants.parking import parked_counts
from xypr.tenants.schemas import TenantUpdate
from xypr.tenants.service import get_tenant, list_tenants, tenant_view
from xypr.topology import QUEUES

__all__ = ["PATHS", "router"]

PATHS = ("/admin",)
router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)
router.include_router(wizard_router)

Viewer = Annotated[Principal, Depends(viewer)]
PAGE_SIZE = 20
STREAM_SECONDS = 300.0  # an SSE stream ends after this; the browser reconnects (and is authenticated again)
STREAM_EVERY = 2.0


def _admin_only(principal: Principal) -> None:
    if not principal.is_platform_admin:
        raise NotFound("no such page")


def _flash(request: Request, message: str, *, kind: str = "ok", title: str = "Done") -> Response:
    response = render(request, "partials/flash.html", kind=kind, title=title, message=message)
    response.headers["HX-Retarget"] = "#flash"
    response.headers["HX-Reswap"] = "innerHTML"
    return response


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: str(value) for key, value in form.items() if isinstance(value, str)}


# Sign in / out ---------------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin"


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in page (public)."""
    return render(request, "login.html", next=_safe_next(next), error=None, email="")


@router.post("/login")
async def login_submit(request: Request, runtime: RuntimeDep) -> Response:
    """Email + password → the session cookies, then back where the person was going."""
    # The JSON login's own steps (attempt limit per account, session cookies), shared rather than repeated.
    from xypr.services.auth.router import TooManyAttempts, _admin_login, _session_response

    fields = await _form(request)
    email, password, target = fields.get("email", ""), fields.get("password", ""), _safe_next(fields.get("next"))
    error: str | None = None
    if not email.strip() or not password:
        error = "Enter your email and password"
    else:
        try:
            tokens = await _admin_login(runtime, email, password)
        except TooManyAttempts as exc:
            error = f"Too many attempts for this account; try again in {exc.retry_after} s"
        except Unauthorized:
            error = "Wrong email or password"
        else:
            return _session_response(runtime, tokens, RedirectResponse(target, status_code=303))
    # 200 with the error on the page (the GOV.UK way): a 401 document would be a console error in every browser.
    return render(request, "login.html", next=target, error=error, email=email)


@router.post("/logout")
async def logout(request: Request, runtime: RuntimeDep) -> Response:
    """End the session and go to the sign-in page — whoever is signed in: an agent on the no-access page too."""
    me = getattr(request.state, "principal", None)
    if isinstance(me, Principal) and me.session_id:
        await revoke_session(runtime.database, runtime.cache, me.session_id,
                             access_ttl=runtime.settings.access_token_ttl_seconds)  # fmt: skip
    response = Response(status_code=204, headers={"HX-Redirect": "/admin/login"})
    clear_session_cookies(response, runtime.settings)
    response.delete_cookie(REFRESH_COOKIE, path="/auth")
    return response


# Overview ----------------------------------------------------------------------------------------


@router.get("")
async def overview(request: Request, runtime: RuntimeDep, me: Viewer) -> Response:
    """Health of everything, live."""
    data = await build_overview(runtime, me)
    return render(request, "overview.html", title="Overview", o=data, thresholds=THRESHOLDS)


@router.get("/overview/stream")
async def overview_stream(request: Request, runtime: RuntimeDep, me: Viewer) -> Response:
    """Server-sent events every few seconds: the tiles (event `tiles`) and the tables (event `details`)."""

    def event(name: str, template: str, data: Overview) -> bytes:
        html = bytes(render(request, template, o=data).body).decode()
        return (f"event: {name}\n" + "".join(f"data: {line}\n" for line in html.splitlines() or [""]) + "\n").encode()

    async def events() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + STREAM_SECONDS
        yield b"retry: 3000\n\n"
        while time.monotonic() < deadline and not await request.is_disconnected():
            data = await build_overview(runtime, me)
            yield event("tiles", "partials/overview_tiles.html", data) + event(
                "details", "partials/overview_details.html", data
            )
            await asyncio.sleep(STREAM_EVERY)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


# Tenants ---------------------------------------------------------------------------------------


@router.get("/tenants")
async def tenants(
    request: Request, runtime: RuntimeDep, me: Viewer, q: str = "", status: str = "", page: int = 1
) -> Response:
    """Every tenant (Xypr admins), searchable; a tenant's people go to their own tenant's page."""
    if not me.is_platform_admin:
        return RedirectResponse(f"/admin/tenants/{me.tenant_id}", status_code=303)
    if status and status not in TENANT_STATUSES:
        raise BadRequest(f"status: one of {', '.join(TENANT_STATUSES)}")
    page = max(1, page)
    found, total = await list_tenants(
        runtime.database, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, status=status or None, search=q or None
    )
    parked = await parked_counts(runtime.database, [t.id for t in found])
    rows = [tenant_view(t, parked_events=parked.get(t.id, 0)) for t in found]
    pages = max(1, math.ceil(total / PAGE_SIZE))
    query = {"q": q, "status": status}
    context: dict[str, Any] = dict(
        title="Tenants", rows=rows, total=total, q=q, status=status, statuses=TENANT_STATUSES, page=page,
        pages=pages, prev_url=f"?{urlencode({**query, 'page': page - 1})}" if page > 1 else None,
        next_url=f"?{urlencode({**query, 'page': page + 1})}" if page < pages else None,
        drafts=await my_drafts(runtime, me.user_id),
    )  # fmt: skip
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "tenant-results":
        return render(request, "partials/tenant_results.html", **context)
    return render(request, "tenants.html", **context)


async def _tenant_context(runtime: RuntimeDep, me: Principal, tenant_id: str) -> dict[str, Any]:
    if not me.can_access_tenant(tenant_id):
        raise NotFound(f"no tenant {tenant_id}")
    tenant = await get_tenant(runtime.database, tenant_id)
    parked = (await parked_counts(runtime.database, [tenant_id])).get(tenant_id, 0)
    view = tenant_view(tenant, parked_events=parked)
    mapping = RoleMapping.model_validate((view.settings or {}).get("role_mapping") or {})
    return {"tenant": view, "parked": parked, "mapping": mapping}


@router.get("/tenants/{tenant_id}")
async def tenant_page(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """A tenant: status and actions, checks, Genesys token, WhatsApp number, webhooks, statistics."""
    context = await _tenant_context(runtime, me, tenant_id)
    token, number, hooks = await asyncio.gather(
        genesys_token_status(runtime, me, tenant_id),
        whatsapp_number_status(runtime, me, tenant_id),
        webhook_help(runtime, me, tenant_id),
    )
    stats = await _stats(runtime, me, tenant_id)
    # The people of the tenant (GET /users?tenantId=): managing them is for Xypr administrators.
    people = await list_people(runtime, me, tenant_id=tenant_id) if me.is_platform_admin else None
    return render(request, "tenant.html", title=context["tenant"].name, token=token, number=number, hooks=hooks,
                  stats=stats, people=people, **context)  # fmt: skip


async def _stats(runtime: RuntimeDep, me: Principal, tenant_id: str) -> Any:
    """The tenant's statistics: the answer of `GET /state/stats?tenantId=` itself."""
    from xypr.services.state_manager.router import Scope, stats

    return await stats(runtime, Scope(tenant_id=tenant_id, principal=me))


@router.get("/tenants/{tenant_id}/webhooks")
async def tenant_webhooks(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """The webhook helper: URLs to copy, verify token masked, verification test, last webhook per direction."""
    context = await _tenant_context(runtime, me, tenant_id)
    hooks = await webhook_help(runtime, me, tenant_id)
    return render(request, "webhooks.html", title=f"Webhooks of {context['tenant'].name}", hooks=hooks, **context)


@router.post("/tenants/{tenant_id}/webhooks/verify")
async def tenant_verify(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """Play Meta's verification handshake against our webhook and show the result."""
    result = await check_webhook_verification(runtime, me, tenant_id)
    return render(request, "partials/verification.html", result=result)


@router.post("/tenants/{tenant_id}/suspend")
async def tenant_suspend(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """Suspend (Xypr admins): webhooks get parked."""
    _admin_only(me)
    await suspend_tenant(runtime, tenant_id, actor=me)
    return Response(status_code=204, headers={"HX-Refresh": "true"})


@router.post("/tenants/{tenant_id}/reactivate")
async def tenant_reactivate(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """Reactivate (Xypr admins): parked webhooks are replayed in order."""
    _admin_only(me)
    await reactivate_tenant(runtime, tenant_id, actor=me)
    return Response(status_code=204, headers={"HX-Refresh": "true"})


@router.get("/tenants/{tenant_id}/delete")
async def tenant_delete_confirm(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """Ask before deleting (type the tenant's name)."""
    _admin_only(me)
    context = await _tenant_context(runtime, me, tenant_id)
    return render(request, "tenant_delete.html", title=f"Delete {context['tenant'].name}", error=None, **context)


@router.post("/tenants/{tenant_id}/delete")
async def tenant_delete(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """Delete a suspended tenant once its name was typed to confirm."""
    _admin_only(me)
    context = await _tenant_context(runtime, me, tenant_id)
    typed = (await _form(request)).get("confirm", "").strip()
    if typed != context["tenant"].name:
        return render(request, "tenant_delete.html", title=f"Delete {context['tenant'].name}",
                      error="Type the tenant's name exactly to confirm", **context)  # fmt: skip
    try:
        await delete_tenant(runtime, tenant_id, actor=me)
    except Conflict as exc:
        return render(request, "tenant_delete.html", title=f"Delete {context['tenant'].name}", error=exc.message,
                      **context)  # fmt: skip
    return Response(status_code=204, headers={"HX-Redirect": "/admin/tenants"})


@router.post("/tenants/{tenant_id}/checks")
async def tenant_checks(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """Run the onboarding checks again and show them."""
    if me.role not in (Role.XYPR_ADMIN, Role.TENANT_ADMIN):
        raise Forbidden("running the checks needs the tenant_admin role")
    await _tenant_context(runtime, me, tenant_id)
    await check_tenant(runtime, tenant_id)
    context = await _tenant_context(runtime, me, tenant_id)
    return render(request, "partials/checks.html", **context)


@router.post("/tenants/{tenant_id}/genesys-token/refresh")
async def tenant_token_refresh(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """Fetch a new Genesys token and show its status (or the error Genesys answered)."""
    error: str | None = None
    try:
        await refresh_genesys_token(runtime, me, tenant_id)
    except XyprError as exc:
        if exc.code != "genesys_token_refresh_failed":
            raise
        error = exc.message
    token = await genesys_token_status(runtime, me, tenant_id)
    return render(request, "partials/token.html", token=token, tenant_id=tenant_id, error=error)


@router.post("/tenants/{tenant_id}/role-mapping")
async def tenant_role_mapping(request: Request, runtime: RuntimeDep, me: Viewer, tenant_id: str) -> Response:
    """Which Genesys roles become tenant_admin / supervisor (the rest: agents)."""
    if me.role not in (Role.XYPR_ADMIN, Role.TENANT_ADMIN):
        raise Forbidden("changing the role mapping needs the tenant_admin role")
    context = await _tenant_context(runtime, me, tenant_id)
    fields = await _form(request)

    def names(field: str) -> list[str]:
        return [line.strip() for line in fields.get(field, "").replace(",", "\n").splitlines() if line.strip()]

    mapping = context["mapping"].model_copy(
        update={"tenant_admin": RoleRule(roles=names("tenant_admin"), permissions=context["mapping"].tenant_admin
                                          .permissions),
                "supervisor": RoleRule(roles=names("supervisor"), permissions=context["mapping"].supervisor
                                        .permissions)}
    )  # fmt: skip
    settings = {**(context["tenant"].settings or {}), "role_mapping": mapping.model_dump(mode="json")}
    await update_tenant(
        runtime, tenant_id, TenantUpdate(settings=settings), platform_admin=me.is_platform_admin, actor=me
    )
    return _flash(request, "The role mapping is saved; it applies at each person's next sign-in.")


# Messages ----------------------------------------------------------------------------------------


@router.get("/messages")
async def messages(request: Request, runtime: RuntimeDep, me: Viewer, q: str = "") -> Response:
    """Find a message by wamid, Genesys message id, conversation id or wa_id; show its timeline."""
    search = await search_messages(runtime, me, q) if q.strip() else None
    return render(request, "messages.html", title="Messages", q=q, search=search)


# Dead letters ------------------------------------------------------------------------------------


def _dlq_filter(me: Principal, params: dict[str, str]) -> DeadLetterFilter:
    age = params.get("older_than_minutes", "").strip()
    try:
        older = float(age) * 60 if age else None
    except ValueError as exc:
        raise BadRequest("older_than_minutes: a number of minutes") from exc
    tenant = params.get("tenant_id", "").strip() if me.is_platform_admin else None
    return DeadLetterFilter(tenant or None, params.get("queue") or None, params.get("error") or None, older)


@router.get("/dead-letters")
async def dead_letters(request: Request, runtime: RuntimeDep, me: Viewer) -> Response:
    """Dead letters, filtered by tenant, queue, error and age."""
    params = dict(request.query_params)
    letters, total = await find_dead_letters(runtime, me, _dlq_filter(me, params), limit=200)
    return render(request, "dead_letters.html", title="Dead letters", letters=letters, total=total, params=params,
                  queues=QUEUES, may_act=me.role in (Role.XYPR_ADMIN, Role.TENANT_ADMIN))  # fmt: skip


@router.post("/dead-letters/replay")
async def dead_letters_replay_all(request: Request, runtime: RuntimeDep, me: Viewer) -> Response:
    """Replay every dead letter of the current filter."""
    replayed = await replay_dead_letters(runtime, me, _dlq_filter(me, await _form(request)))
    response = _flash(request, f"Replayed {replayed} dead letter{'s' if replayed != 1 else ''}.")
    response.headers["HX-Trigger"] = "dlq-changed"
    return response


@router.get("/dead-letters/{dead_letter_id}")
async def dead_letter(request: Request, runtime: RuntimeDep, me: Viewer, dead_letter_id: str) -> Response:
    """One dead letter: error, attempts, payload (redacted)."""
    letter = await get_dead_letter(runtime, me, dead_letter_id)
    return render(request, "dead_letter.html", title="Dead letter", letter=letter, error=None,
                  may_act=me.role in (Role.XYPR_ADMIN, Role.TENANT_ADMIN))  # fmt: skip


@router.post("/dead-letters/{dead_letter_id}/replay")
async def dead_letter_replay(request: Request, runtime: RuntimeDep, me: Viewer, dead_letter_id: str) -> Response:
    """Replay one, then back to the list."""
    await replay_dead_letter(runtime, me, dead_letter_id)
    return Response(status_code=204, headers={"HX-Redirect": "/admin/dead-letters?done=replayed"})


@router.post("/dead-letters/{dead_letter_id}/discard")
async def dead_letter_discard(request: Request, runtime: RuntimeDep, me: Viewer, dead_letter_id: str) -> Response:
    """Discard one with a reason, then back to the list."""
    reason = (await _form(request)).get("reason", "")
    try:
        await discard_dead_letter(runtime, me, dead_letter_id, reason=reason)
    except BadRequest as exc:
        letter = await get_dead_letter(runtime, me, dead_letter_id)
        return render(request, "dead_letter.html", title="Dead letter", letter=letter,
                      error=exc.message.removeprefix("reason: ").capitalize(), may_act=True)  # fmt: skip
    return Response(status_code=204, headers={"HX-Redirect": "/admin/dead-letters?done=discarded"})


# Users -----------------------------------------------------------------------------------------


@router.get("/users")
async def users(request: Request, runtime: RuntimeDep, me: Viewer) -> Response:
    """Xypr administrators, who is signed in."""
    _admin_only(me)
    return render(request, "users.html", title="Users", admins=await list_people(runtime, me),
                  sessions=await live_sessions(runtime, me), error=None, field=None)  # fmt: skip


@router.post("/users")
async def users_create(request: Request, runtime: RuntimeDep, me: Viewer) -> Response:
    """Create an administrator."""
    _admin_only(me)
    fields = await _form(request)
    try:
        await add_admin(runtime, me, email=fields.get("email", ""), password=fields.get("password", ""),
                        name=fields.get("name") or None)  # fmt: skip
    except (BadRequest, Conflict) as exc:
        return render(request, "users.html", status_code=200, title="Users", admins=await list_people(runtime, me),
                      sessions=await live_sessions(runtime, me), error=exc.message, field=exc.field,
                      new_email=fields.get("email", ""), new_name=fields.get("name", ""))  # fmt: skip
    return Response(status_code=204, headers={"HX-Redirect": "/admin/users"})


@router.post("/users/{user_id}/{action}")
async def users_action(request: Request, runtime: RuntimeDep, me: Viewer, user_id: str, action: str) -> Response:
    """Disable, enable, or set a new password."""
    _admin_only(me)
    if action in ("disable", "enable"):
        await set_person_status(runtime, me, user_id, active=action == "enable")
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    if action == "password":
        await reset_admin_password(runtime, me, user_id, password=(await _form(request)).get("password", ""))
        return _flash(request, "The new password is set; their sessions have ended.")
    raise NotFound("no such action")


# Audit -----------------------------------------------------------------------------------------


@router.get("/audit")
async def audit(request: Request, runtime: RuntimeDep, me: Viewer, page: int = 1, action: str = "") -> Response:
    """Who did what, to which tenant, when."""
    page = max(1, page)
    records, total = await list_audit(runtime.database, me, action=action or None, limit=50, offset=(page - 1) * 50)
    pages = max(1, math.ceil(total / 50))
    return render(request, "audit.html", title="Audit log", records=records, total=total, page=page, pages=pages,
                  action=action)  # fmt: skip
