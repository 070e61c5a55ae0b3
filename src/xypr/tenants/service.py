"""Tenant operations: create from a tenant file, look up by routing key, open sealed secrets."""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from xypr.backends.cache.base import Cache
from xypr.backends.db import Database
from xypr.backends.db.base import new_id, utcnow
from xypr.core.apimodel import camel_path, snake_path
from xypr.core.errors import BadRequest, Conflict, NotFound
from xypr.core.logging import get_logger
from xypr.core.secretbox import SecretBox
from xypr.genesys.client import GenesysCredentials
from xypr.tenants.models import SECRET_FIELDS, Tenant
from xypr.tenants.schemas import CheckResult, GenesysView, TenantFile, TenantView, WhatsAppView
from xypr.whatsapp.client import WhatsAppCredentials

__all__ = [
    "TENANT_CHANGES",
    "TenantDirectory",
    "TenantRuntime",
    "announce_tenant_change",
    "create_tenant",
    "follow_tenant_changes",
    "get_tenant",
    "list_tenants",
    "open_tenant",
    "parse_tenant_file",
    "tenant_view",
]

log = get_logger(__name__)

TENANT_CHANGES = "tenants"
"""Cache pub/sub channel on which every tenant change is announced to every process."""


@dataclass(frozen=True, slots=True)
class TenantRuntime:
    """A tenant with its secrets opened, for the pipeline; secrets are kept out of `repr`."""

    id: str
    name: str
    status: str
    genesys_region: str
    genesys_client_id: str
    genesys_integration_id: str
    wa_waba_id: str
    wa_phone_number_id: str
    wa_display_phone_number: str
    settings: dict[str, Any]
    genesys_client_secret: str = field(repr=False)
    genesys_webhook_secret: str = field(repr=False)
    wa_access_token: str = field(repr=False)
    wa_app_secret: str = field(repr=False)
    wa_verify_token: str = field(repr=False)

    @property
    def active(self) -> bool:
        """Only active tenants are processed."""
        return self.status == "active"

    @property
    def genesys_credentials(self) -> GenesysCredentials:
        """What the Genesys client needs of this tenant."""
        return GenesysCredentials(
            tenant_id=self.id,
            region=self.genesys_region,
            client_id=self.genesys_client_id,
            integration_id=self.genesys_integration_id,
            client_secret=self.genesys_client_secret,
        )

    @property
    def whatsapp_credentials(self) -> WhatsAppCredentials:
        """What the Graph client needs to send from this tenant's number."""
        return WhatsAppCredentials(phone_number_id=self.wa_phone_number_id, access_token=self.wa_access_token)


def _spelled_snake(raw: Any) -> bool:
    """Whether a tenant file uses the snake_case names (the form before the API's camelCase convention)."""
    if not isinstance(raw, dict):
        return False
    sections = [raw, *(value for value in raw.values() if isinstance(value, dict))]
    return any("_" in str(key) for section in sections for key in section)


def parse_tenant_file(raw: Any) -> TenantFile:
    """Validate a tenant file (camelCase or snake_case names); the error names the first offending field
    as the file spells its names (`genesys.webhookSecret`, or `genesys.webhook_secret` in a snake_case file)."""
    try:
        return TenantFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "tenant"
        if first["type"] != "extra_forbidden":  # an unknown key is named exactly as written
            where = snake_path(where) if _spelled_snake(raw) else camel_path(where)
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "is required"
        elif first["type"] == "string_too_short" and "secret" in where.lower():
            message = f"must be at least {first['ctx']['min_length']} characters"
        elif first["type"] == "extra_forbidden":
            message = "is not a known field"
        raise BadRequest(f"{where}: {message}", field=where) from exc


def tenant_view(tenant: Tenant, *, parked_events: int = 0) -> TenantView:
    """The public, secret-free view of a tenant."""
    return TenantView(
        id=tenant.id,
        name=tenant.name,
        status=tenant.status,
        genesys=GenesysView(
            region=tenant.genesys_region,
            client_id=tenant.genesys_client_id,
            integration_id=tenant.genesys_integration_id,
            org_id=tenant.genesys_org_id,
        ),
        whatsapp=WhatsAppView(
            waba_id=tenant.wa_waba_id,
            phone_number_id=tenant.wa_phone_number_id,
            display_phone_number=tenant.wa_display_phone_number,
        ),
        settings=tenant.settings,
        # Stored under the Python names of the fields they check; shown in the API's convention.
        checks={
            camel_path(name): CheckResult.model_validate(check)
            for name, check in (tenant.onboarding_checks or {}).items()
        },
        checked_at=tenant.checked_at,
        parked_events=parked_events,
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
    )


async def get_tenant(database: Database, tenant_id: str) -> Tenant:
    """The tenant with this id; `NotFound` otherwise."""
    async with database.session() as session:
        tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id}")
    return tenant


async def list_tenants(
    database: Database, *, limit: int, offset: int, status: str | None = None, search: str | None = None
) -> tuple[list[Tenant], int]:
    """One page of tenants, oldest first, and how many there are in all.

    `search` matches part of the name (any case) or exactly a phone number id, WABA id, Genesys org id or
    integration id.
    """
    query = select(Tenant)
    counting = select(func.count()).select_from(Tenant)
    if status is not None:
        query = query.where(Tenant.status == status)
        counting = counting.where(Tenant.status == status)
    if search and search.strip():
        text = search.strip()
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matching = or_(
            func.lower(Tenant.name).like(pattern, escape="\\"),
            Tenant.wa_phone_number_id == text,
            Tenant.wa_waba_id == text,
            Tenant.genesys_org_id == text,
            Tenant.genesys_integration_id == text,
        )
        query = query.where(matching)
        counting = counting.where(matching)
    async with database.session() as session:
        total = int(await session.scalar(counting) or 0)
        page = await session.scalars(query.order_by(Tenant.created_at, Tenant.id).limit(limit).offset(offset))
        return list(page.all()), total


def open_tenant(box: SecretBox, tenant: Tenant) -> TenantRuntime:
    """The tenant with its secrets opened (for the pipeline and the onboarding checks)."""

    def secret(column: str) -> str:
        return box.open(getattr(tenant, column), tenant_id=tenant.id)

    return TenantRuntime(
        id=tenant.id,
        name=tenant.name,
        status=tenant.status,
        genesys_region=tenant.genesys_region,
        genesys_client_id=tenant.genesys_client_id,
        genesys_integration_id=tenant.genesys_integration_id,
        wa_waba_id=tenant.wa_waba_id,
        wa_phone_number_id=tenant.wa_phone_number_id,
        wa_display_phone_number=tenant.wa_display_phone_number,
        settings=dict(tenant.settings or {}),
        genesys_client_secret=secret("genesys_client_secret_sealed"),
        genesys_webhook_secret=secret("genesys_webhook_secret_sealed"),
        wa_access_token=secret("wa_access_token_sealed"),
        wa_app_secret=secret("wa_app_secret_sealed"),
        wa_verify_token=secret("wa_verify_token_sealed"),
    )


async def announce_tenant_change(cache: Cache, directory: TenantDirectory, tenant_id: str, change: str) -> None:
    """Forget cached tenants here and tell every other process to do the same."""
    directory.invalidate()
    try:
        await cache.publish(TENANT_CHANGES, orjson.dumps({"tenant_id": tenant_id, "change": change}))
    except Exception as exc:  # the change is committed; other processes catch up when their cache expires
        log.warning("tenants.announce_failed", tenant_id=tenant_id, change=change, error_type=type(exc).__name__)


async def follow_tenant_changes(cache: Cache, directory: TenantDirectory, *, retry_delay: float = 1.0) -> None:
    """Forget cached tenants whenever any process announces a change; runs until cancelled."""
    while True:
        try:
            async for _announcement in cache.subscribe(TENANT_CHANGES):
                directory.invalidate()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("tenants.follow_failed", error_type=type(exc).__name__)
        # Announcements made while we were not subscribed are lost: start from a clean cache.
        directory.invalidate()
        await asyncio.sleep(retry_delay)


async def create_tenant(
    database: Database, box: SecretBox, spec: TenantFile, *, checks: dict[str, CheckResult] | None = None
) -> Tenant:
    """Insert a tenant with its secrets sealed (and its onboarding `checks`); a taken id is a `Conflict`."""
    async with database.session() as session:
        for column, value, where in (
            (Tenant.wa_phone_number_id, spec.whatsapp.phone_number_id, "whatsapp.phone_number_id"),
            (Tenant.genesys_integration_id, spec.genesys.integration_id, "genesys.integration_id"),
            (Tenant.genesys_org_id, spec.genesys.org_id, "genesys.org_id"),
        ):
            if value is not None and await session.scalar(select(Tenant.id).where(column == value)):
                field = camel_path(where)
                raise Conflict(f"{field}: {value!r} already belongs to another tenant", field=field)
        tenant = Tenant(
            name=spec.name,
            status="active",
            genesys_region=spec.genesys.region,
            genesys_client_id=spec.genesys.client_id,
            genesys_integration_id=spec.genesys.integration_id,
            genesys_org_id=spec.genesys.org_id,
            wa_waba_id=spec.whatsapp.waba_id,
            wa_phone_number_id=spec.whatsapp.phone_number_id,
            wa_display_phone_number=spec.whatsapp.display_phone_number,
            settings=spec.settings,
            onboarding_checks={name: check.model_dump() for name, check in checks.items()} if checks else None,
            checked_at=utcnow() if checks else None,
        )
        tenant.id = new_id()  # known before sealing: the id is the secrets' associated data
        for (section, name), column_name in SECRET_FIELDS.items():
            plaintext = getattr(getattr(spec, section), name)
            setattr(tenant, column_name, box.seal(plaintext, tenant_id=tenant.id))
        session.add(tenant)
        try:
            await session.flush()
        except IntegrityError as exc:  # a concurrent create won the race
            raise Conflict("phone_number_id or integration_id already belongs to another tenant") from exc
        await session.refresh(tenant)
        return tenant


class TenantDirectory:
    """Routing lookups (phone number id, integration id, tenant id) with a short in-process cache."""

    def __init__(self, database: Database, box: SecretBox, *, ttl: float = 30.0) -> None:
        self._database = database
        self._box = box
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, TenantRuntime | None]] = {}
        self._verify_tokens: tuple[float, list[str]] | None = None

    def invalidate(self) -> None:
        """Forget every cached tenant (after a change)."""
        self._cache.clear()
        self._verify_tokens = None

    async def verify_token_matches(self, token: str) -> bool:
        """True when `token` is the WhatsApp verify token of an active tenant (constant-time compares)."""
        if not token:
            return False
        now = time.monotonic()
        if self._verify_tokens is None or self._verify_tokens[0] <= now:
            async with self._database.session() as session:
                rows = (await session.execute(select(Tenant.id, Tenant.wa_verify_token_sealed))).all()
            tokens = [self._box.open(sealed, tenant_id=tenant_id) for tenant_id, sealed in rows]
            self._verify_tokens = (now + self._ttl, tokens)
        matches = [hmac.compare_digest(token.encode(), known.encode()) for known in self._verify_tokens[1]]
        return any(matches)

    async def by_phone_number_id(self, phone_number_id: str) -> TenantRuntime | None:
        """The tenant owning a WhatsApp phone number id."""
        return await self._lookup("phone", phone_number_id, Tenant.wa_phone_number_id)

    async def by_waba_id(self, waba_id: str) -> TenantRuntime | None:
        """A tenant of a WhatsApp Business Account (webhook changes that name no phone number)."""
        return await self._lookup("waba", waba_id, Tenant.wa_waba_id)

    async def by_integration_id(self, integration_id: str) -> TenantRuntime | None:
        """The tenant owning a Genesys Open Messaging integration id."""
        return await self._lookup("integration", integration_id, Tenant.genesys_integration_id)

    async def by_id(self, tenant_id: str) -> TenantRuntime | None:
        """The tenant with this id."""
        return await self._lookup("id", tenant_id, Tenant.id)

    async def _lookup(self, kind: str, value: str, column: Any) -> TenantRuntime | None:
        now = time.monotonic()
        hit = self._cache.get((kind, value))
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self._database.session() as session:
            tenant = await session.scalar(select(Tenant).where(column == value).limit(1))
        runtime = self._open(tenant) if tenant is not None else None
        # Misses are cached briefly too, so a flood for an unknown number does not hammer the database.
        self._cache[(kind, value)] = (now + (self._ttl if runtime else min(self._ttl, 5.0)), runtime)
        return runtime

    def _open(self, tenant: Tenant) -> TenantRuntime:
        return open_tenant(self._box, tenant)
