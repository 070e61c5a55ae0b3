"""The tenant service's use cases: onboard (checks, one-step setup), update, suspend, reactivate, delete.

Every change is announced on the cache's `tenants` channel so every process forgets its cached copy.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from xypr.audit.service import record_audit
from xypr.auth.principal import Principal
from xypr.backends.db.base import utcnow
from xypr.core.apimodel import camel_path
from xypr.core.errors import BadRequest, Conflict, Forbidden
from xypr.runtime import Runtime
from xypr.state.models import Media
from xypr.tenants.models import SECRET_FIELDS, Tenant
from xypr.tenants.onboarding import (
    ACCESS_TOKEN,
    CREATE_INTEGRATION,
    CREDENTIALS,
    INTEGRATION,
    SUBSCRIBE_APP,
    Onboarding,
)
from xypr.tenants.parking import resume_parked
from xypr.tenants.schemas import CheckResult, TenantCreate, TenantFile, TenantUpdate
from xypr.tenants.service import (
    TenantRuntime,
    announce_tenant_change,
    create_tenant,
    get_tenant,
    open_tenant,
)

__all__ = [
    "OnboardingFailed",
    "check_tenant",
    "delete_tenant",
    "onboard_tenant",
    "reactivate_tenant",
    "suspend_tenant",
    "update_tenant",
]

_PREFIX = {"genesys": "genesys_", "whatsapp": "wa_"}
# Changing where messages are routed needs proof of ownership from a tenant admin (not from a Xypr admin).
_OWNERSHIP = {("whatsapp", "phone_number_id"): ACCESS_TOKEN, ("genesys", "integration_id"): INTEGRATION}
_GENESYS_LOGIN_FIELDS = {("genesys", "region"), ("genesys", "client_id"), ("genesys", "client_secret")}
RESUME_TIME_LIMIT = 60.0


class OnboardingFailed(Conflict):
    """409: a setup step or a required check failed; nothing was changed. The body carries every check.

    Not a 400: the request is well formed; Genesys or Meta (the state of the world) refused it.
    """

    code = "onboarding_failed"

    def __init__(self, message: str, checks: dict[str, CheckResult]) -> None:
        super().__init__(message)
        self.checks = checks

    def to_body(self) -> dict[str, object]:
        """The error body with the checks, field by field."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "checks": {camel_path(name): check.model_dump() for name, check in self.checks.items()},
            }
        }


async def _ensure_free(runtime: Runtime, identifiers: dict[str, str | None], *, tenant_id: str | None) -> None:
    """`Conflict` naming the field when another tenant already owns one of these routing identifiers."""
    columns = {
        "whatsapp.phone_number_id": Tenant.wa_phone_number_id,
        "genesys.integration_id": Tenant.genesys_integration_id,
        "genesys.org_id": Tenant.genesys_org_id,
    }
    async with runtime.database.session() as session:
        for where, value in identifiers.items():
            if value is None:
                continue
            query = select(Tenant.id).where(columns[where] == value)
            if tenant_id is not None:
                query = query.where(Tenant.id != tenant_id)
            if await session.scalar(query):
                field = camel_path(where)
                raise Conflict(f"{field}: {value!r} already belongs to another tenant", field=field)


async def onboard_tenant(runtime: Runtime, request: TenantCreate, *, actor: Principal | None = None) -> Tenant:
    """Create a tenant: optional setup steps (all must succeed), then the checks, reported field by field."""
    genesys, whatsapp = request.genesys, request.whatsapp
    setup = request.setup
    if setup.create_integration and (genesys.integration_id or genesys.webhook_secret):
        raise BadRequest(
            "genesys.integrationId: leave out integrationId and webhookSecret when setup.createIntegration "
            "is true (Xypr creates both)",
            field="genesys.integrationId",
        )
    for name in ("integration_id", "webhook_secret"):
        if not setup.create_integration and getattr(genesys, name) is None:
            where = camel_path(f"genesys.{name}")
            raise BadRequest(f"{where}: is required (or set setup.createIntegration)", field=where)
    await _ensure_free(
        runtime,
        {
            "whatsapp.phone_number_id": whatsapp.phone_number_id,
            "genesys.integration_id": genesys.integration_id,
            "genesys.org_id": genesys.org_id,
        },
        tenant_id=None,
    )
    onboarding = Onboarding(runtime.http, runtime.settings)
    candidate = TenantRuntime(
        id="",
        name=request.name,
        status="active",
        genesys_region=genesys.region,
        genesys_client_id=genesys.client_id,
        genesys_integration_id=genesys.integration_id or "",
        wa_waba_id=whatsapp.waba_id,
        wa_phone_number_id=whatsapp.phone_number_id,
        wa_display_phone_number=whatsapp.display_phone_number,
        settings=request.settings,
        genesys_client_secret=genesys.client_secret,
        genesys_webhook_secret=genesys.webhook_secret or secrets.token_urlsafe(32),
        wa_access_token=whatsapp.access_token,
        wa_app_secret=whatsapp.app_secret,
        wa_verify_token=whatsapp.verify_token,
    )
    setup_results: dict[str, CheckResult] = {}
    # Subscribing is idempotent and cheap: do it first, so a failure leaves no integration behind.
    if setup.subscribe_app:
        setup_results[SUBSCRIBE_APP] = await onboarding.subscribe_app(candidate)
        if not setup_results[SUBSCRIBE_APP].ok:
            raise OnboardingFailed("setup.subscribeApp failed; no tenant was created", setup_results)
    if setup.create_integration:
        token, credentials = await onboarding.genesys_token(candidate)
        setup_results[CREDENTIALS] = credentials
        if token is None:
            raise OnboardingFailed(
                "genesys.credentials failed; no integration and no tenant were created", setup_results
            )
        integration_id, created = await onboarding.create_integration(
            candidate,
            token,
            name=setup.integration_name or request.name,
            webhook_secret=candidate.genesys_webhook_secret,
        )
        setup_results[CREATE_INTEGRATION] = created
        if integration_id is None:
            raise OnboardingFailed("setup.createIntegration failed; no tenant was created", setup_results)
        await _ensure_free(runtime, {"genesys.integration_id": integration_id}, tenant_id=None)
        candidate = dataclasses.replace(candidate, genesys_integration_id=integration_id)
    checks = {**setup_results, **await onboarding.run_checks(candidate)}
    spec = TenantFile.model_validate(
        {
            "name": request.name,
            "genesys": {
                **genesys.model_dump(exclude_none=True, by_alias=False),
                "integration_id": candidate.genesys_integration_id,
                "webhook_secret": candidate.genesys_webhook_secret,
            },
            "whatsapp": whatsapp.model_dump(by_alias=False),
            "settings": request.settings,
        }
    )
    tenant = await create_tenant(runtime.database, runtime.box, spec, checks=checks)
    await announce_tenant_change(runtime.cache, runtime.tenants, tenant.id, "created")
    await record_audit(
        runtime.database, actor, "tenant.create", tenant_id=tenant.id, target=tenant.name,
        details={"setup": request.setup.model_dump(exclude_none=True),
                 "failed_checks": sorted(name for name, check in checks.items() if not check.ok)},
    )  # fmt: skip
    return tenant


async def check_tenant(runtime: Runtime, tenant_id: str) -> Tenant:
    """Run the onboarding checks again with the stored credentials and keep their results."""
    tenant = await get_tenant(runtime.database, tenant_id)
    checks = await Onboarding(runtime.http, runtime.settings).run_checks(open_tenant(runtime.box, tenant))
    async with runtime.database.session() as session:
        stored = await session.get(Tenant, tenant_id)
        if stored is None:
            raise Conflict("the tenant was deleted meanwhile")
        stored.onboarding_checks = {name: check.model_dump() for name, check in checks.items()}
        stored.checked_at = utcnow()
        await session.flush()
        await session.refresh(stored)
        return stored


def _changes(patch: TenantUpdate) -> dict[tuple[str, str], Any]:
    """The fields a PATCH sets, as (section, field) → value; a null for a required field is a 400."""
    changes: dict[tuple[str, str], Any] = {}
    for name in patch.model_fields_set:
        value = getattr(patch, name)
        if name in ("genesys", "whatsapp"):
            if value is None:
                raise BadRequest(f"{name}: may not be null", field=name)
            for field in value.model_fields_set:
                item = getattr(value, field)
                if item is None and (name, field) != ("genesys", "org_id"):
                    where = camel_path(f"{name}.{field}")
                    raise BadRequest(f"{where}: may not be null", field=where)
                changes[(name, field)] = item
        elif value is None:
            raise BadRequest(f"{name}: may not be null", field=name)
        else:
            changes[("", name)] = value
    return changes


def _settings_changes(before: dict[str, Any] | None, changes: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """For the audit log: which settings keys a PATCH changed (names only), and the new role mapping's role
    names when it changed — who gets which role is what an auditor asks about, and role names are no secret."""
    if ("", "settings") not in changes:
        return {}
    old, new = dict(before or {}), dict(changes[("", "settings")] or {})
    changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    facts: dict[str, Any] = {"settings": changed}
    mapping = new.get("role_mapping")
    if "role_mapping" in changed and isinstance(mapping, dict):
        facts["role_mapping"] = {
            rule: (mapping.get(rule) or {}).get("roles") for rule in ("tenant_admin", "supervisor")
        }  # fmt: skip
    return facts


async def update_tenant(
    runtime: Runtime, tenant_id: str, patch: TenantUpdate, *, platform_admin: bool, actor: Principal | None = None
) -> Tenant:
    """Apply a PATCH: re-seal changed secrets, re-run the checks, announce the change.

    A tenant admin may not move `genesys.org_id` (it decides whose Genesys users log into the tenant),
    and may move the phone number or the integration only to ones its credentials can read.
    """
    changes = _changes(patch)
    if not platform_admin and ("genesys", "org_id") in changes:
        raise Forbidden("genesys.orgId: only a Xypr administrator may change it", field="genesys.orgId")
    tenant = await get_tenant(runtime.database, tenant_id)
    current = open_tenant(runtime.box, tenant)
    runtime_fields: dict[str, Any] = {}
    for (section, field), value in changes.items():
        attribute = field if not section else f"{_PREFIX[section]}{field}"
        if attribute in {f.name for f in dataclasses.fields(TenantRuntime)}:
            runtime_fields[attribute] = value
    candidate = dataclasses.replace(current, **runtime_fields)
    await _ensure_free(
        runtime,
        {
            where: changes.get(key)
            for where, key in (
                ("whatsapp.phone_number_id", ("whatsapp", "phone_number_id")),
                ("genesys.integration_id", ("genesys", "integration_id")),
                ("genesys.org_id", ("genesys", "org_id")),
            )
        },
        tenant_id=tenant_id,
    )
    checks = await Onboarding(runtime.http, runtime.settings).run_checks(candidate)
    if not platform_admin:
        for key, check in _OWNERSHIP.items():
            if key in changes and not checks[check].ok:
                raise OnboardingFailed(
                    f"{camel_path('.'.join(key))}: not changed, {camel_path(check)} did not pass", checks
                )
    async with runtime.database.session() as session:
        stored = await session.get(Tenant, tenant_id)
        if stored is None:
            raise Conflict("the tenant was deleted meanwhile")
        for (section, field), value in changes.items():
            if (section, field) in SECRET_FIELDS:
                setattr(stored, SECRET_FIELDS[(section, field)], runtime.box.seal(value, tenant_id=tenant_id))
            else:
                setattr(stored, field if not section else f"{_PREFIX[section]}{field}", value)
        stored.onboarding_checks = {name: check.model_dump() for name, check in checks.items()}
        stored.checked_at = utcnow()
        stored.updated_at = utcnow()
        try:
            await session.flush()
        except IntegrityError as exc:  # a concurrent change took the identifier
            raise Conflict("phoneNumberId, integrationId or orgId already belongs to another tenant") from exc
        await session.refresh(stored)
    if _GENESYS_LOGIN_FIELDS & changes.keys():
        # genesys-api must not keep using a token obtained with the old credentials.
        await runtime.genesys.forget_token(current.genesys_credentials)
    await announce_tenant_change(runtime.cache, runtime.tenants, tenant_id, "updated")
    # Field names only: the values of secrets must never reach the log.
    fields = sorted(".".join(part for part in key if part) for key in changes)
    await record_audit(runtime.database, actor, "tenant.update", tenant_id=tenant_id, target=stored.name,
                       details={"fields": fields, **_settings_changes(tenant.settings, changes)})  # fmt: skip
    return stored


async def suspend_tenant(runtime: Runtime, tenant_id: str, *, actor: Principal | None = None) -> Tenant:
    """Suspend a tenant: from now on its webhooks are acknowledged and parked (idempotent)."""
    await get_tenant(runtime.database, tenant_id)
    async with runtime.database.session() as session:
        await session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.status != "suspended")
            .values(status="suspended", updated_at=utcnow())
        )
    await announce_tenant_change(runtime.cache, runtime.tenants, tenant_id, "suspended")
    suspended = await get_tenant(runtime.database, tenant_id)
    await record_audit(runtime.database, actor, "tenant.suspend", tenant_id=tenant_id, target=suspended.name)
    return suspended


async def reactivate_tenant(runtime: Runtime, tenant_id: str, *, actor: Principal | None = None) -> tuple[Tenant, int]:
    """Republish the parked events in arrival order, then process the tenant again; returns how many."""
    tenant = await get_tenant(runtime.database, tenant_id)
    if tenant.status == "active":
        return tenant, 0
    lock = f"{tenant_id}:reactivating"
    if not await runtime.cache.set_nx(lock, b"1", ttl=RESUME_TIME_LIMIT + 30):
        raise Conflict("this tenant is already being reactivated")
    try:
        async with runtime.database.session() as session:
            await session.execute(
                update(Tenant)
                .where(Tenant.id == tenant_id, Tenant.status.in_(("suspended", "resuming")))
                .values(status="resuming", updated_at=utcnow())
            )
        resumed = await resume_parked(runtime.database, runtime.broker, tenant_id, time_limit=RESUME_TIME_LIMIT)
    finally:
        await runtime.cache.delete(lock)
        await announce_tenant_change(runtime.cache, runtime.tenants, tenant_id, "reactivated")
    await record_audit(runtime.database, actor, "tenant.reactivate", tenant_id=tenant_id, target=tenant.name,
                       details={"resumed_events": resumed})  # fmt: skip
    return await get_tenant(runtime.database, tenant_id), resumed


async def delete_tenant(runtime: Runtime, tenant_id: str, *, actor: Principal | None = None) -> None:
    """Delete a suspended tenant with its users, conversations, messages, media copies and parked events."""
    tenant = await get_tenant(runtime.database, tenant_id)
    if tenant.status != "suspended":
        raise Conflict("suspend the tenant before deleting it (its webhooks are still processed)")
    async with runtime.database.session() as session:
        object_keys = list((await session.scalars(select(Media.object_key).where(Media.tenant_id == tenant_id))).all())
    for key in object_keys:
        await runtime.store.delete(key)
    async with runtime.database.session() as session:
        # Every table of tenant data references the tenant with ON DELETE CASCADE.
        await session.execute(delete(Tenant).where(Tenant.id == tenant_id))
    await runtime.genesys.forget_token(open_tenant(runtime.box, tenant).genesys_credentials)
    await announce_tenant_change(runtime.cache, runtime.tenants, tenant_id, "deleted")
    await record_audit(runtime.database, actor, "tenant.delete", tenant_id=tenant_id, target=tenant.name)
