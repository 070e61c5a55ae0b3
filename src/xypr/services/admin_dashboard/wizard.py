"""The new-tenant wizard: one topic per page, errors beside their field and summarised at the top, resumable.

Steps: the name, the WhatsApp number (checked live: the token must read the number), the Genesys side
(checked live: the client credentials must get a token, an existing integration must post to us), then
"Check your answers" with the one-step setup, which creates the tenant through `onboard_tenant` — the
service behind `POST /tenants`. Answers live in a sealed server-side draft; secrets are never sent back
to the browser (a saved secret shows as "saved", and an empty field keeps it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from xypr.auth.principal import Principal
from xypr.core.errors import NotFound
from xypr.runtime import Runtime
from xypr.services.admin_dashboard.drafts import Draft, delete_draft, load_draft, new_draft, save_draft
from xypr.services.admin_dashboard.rendering import PageRoute, render, viewer
from xypr.services.deps import RuntimeDep
from xypr.services.tenant.lifecycle import OnboardingFailed, onboard_tenant
from xypr.tenants.models import Tenant
from xypr.tenants.onboarding import (
    ACCESS_TOKEN,
    CREATE_INTEGRATION,
    CREDENTIALS,
    INTEGRATION,
    SUBSCRIBE_APP,
    Onboarding,
)
from xypr.tenants.schemas import GENESYS_REGIONS, GenesysCreateSection, TenantCreate, WhatsAppSection
from xypr.tenants.service import TenantRuntime

__all__ = ["STEPS", "router"]

router = APIRouter(prefix="/tenants/new", route_class=PageRoute)
Viewer = Annotated[Principal, Depends(viewer)]


@dataclass(frozen=True, slots=True)
class Field:
    """One question of a step."""

    name: str
    label: str
    hint: str = ""
    secret: bool = False
    optional: bool = False
    choices: tuple[str, ...] = ()
    inputmode: str = "text"


@dataclass(frozen=True, slots=True)
class Step:
    """One page of the wizard."""

    name: str
    title: str
    caption: str
    fields: tuple[Field, ...]


STEPS: tuple[Step, ...] = (
    Step(
        "name",
        "What is the organisation called?",
        "Shown to Xypr administrators and in the audit log.",
        (Field("name", "Organisation name", "For example, Acme Support"),),
    ),
    Step(
        "whatsapp",
        "Its WhatsApp number",
        "From Meta's WhatsApp Manager (API setup). Xypr checks at once that the token can read the number.",
        (
            Field("waba_id", "WhatsApp Business Account ID", "Digits only", inputmode="numeric"),
            Field(
                "phone_number_id", "Phone number ID", "Digits only, not the phone number itself", inputmode="numeric"
            ),
            Field("display_phone_number", "Display phone number", "For example, +1 555 0100"),
            Field("access_token", "Access token", "A long-lived system user token", secret=True),
            Field("app_secret", "App secret", "Signs the webhooks Meta sends", secret=True),
            Field("verify_token", "Verify token", "Any text; Meta repeats it when you save the webhook", secret=True),
        ),
    ),
    Step(
        "genesys",
        "Its Genesys Cloud organisation",
        "An OAuth client (client credentials) with the Open Messaging permissions. Xypr checks it at once.",
        (
            Field(
                "region",
                "Region",
                "The domain of your Genesys Cloud organisation",
                choices=tuple(sorted(GENESYS_REGIONS)),
            ),
            Field("client_id", "Client ID"),
            Field("client_secret", "Client secret", secret=True),
            Field("org_id", "Organisation ID", "Lets its people sign in with Genesys Cloud", optional=True),
            Field(
                "integration_id",
                "Open Messaging integration ID",
                "Leave empty to have Xypr create the integration (recommended)",
                optional=True,
            ),
            Field(
                "webhook_secret",
                "Integration webhook secret",
                "Only with an existing integration: its outbound signature secret (16 characters or more)",
                secret=True,
                optional=True,
            ),
        ),
    ),
)
_BY_NAME = {step.name: step for step in STEPS}
_NEXT = {STEPS[i].name: (STEPS[i + 1].name if i + 1 < len(STEPS) else "check") for i in range(len(STEPS))}
# Which step and field a failed onboarding check belongs to.
_CHECK_FIELDS = {
    ACCESS_TOKEN: ("whatsapp", "access_token"),
    SUBSCRIBE_APP: ("whatsapp", "access_token"),
    CREDENTIALS: ("genesys", "client_secret"),
    INTEGRATION: ("genesys", "integration_id"),
    CREATE_INTEGRATION: ("genesys", "integration_id"),
}


# The fields another tenant may already have: a clash is found while typing, before any upstream call.
_UNIQUE: dict[tuple[str, str], tuple[Any, str]] = {
    ("whatsapp", "phone_number_id"): (Tenant.wa_phone_number_id, "Another tenant already has this phone number ID"),
    ("genesys", "org_id"): (Tenant.genesys_org_id, "Another tenant already has this Genesys organisation"),
    ("genesys", "integration_id"): (Tenant.genesys_integration_id, "Another tenant already has this integration"),
}
_STEP_MODELS: dict[str, type[BaseModel]] = {"whatsapp": WhatsAppSection, "genesys": GenesysCreateSection}


def _url(draft: Draft, step: str) -> str:
    return f"/admin/tenants/new/{draft.id}/{step}"


async def _draft(runtime: Runtime, me: Principal, draft_id: str) -> Draft:
    if not me.is_platform_admin:
        raise NotFound("no such page")
    return await load_draft(runtime, me.user_id, draft_id)


@router.get("")
async def start(request: Request, runtime: RuntimeDep, me: Viewer) -> Response:
    """A new draft; its first step."""
    if not me.is_platform_admin:
        raise NotFound("no such page")
    draft = await new_draft(runtime, me.user_id)
    return RedirectResponse(_url(draft, STEPS[0].name), status_code=303)


def _show(request: Request, draft: Draft, step: Step, errors: dict[str, str], typed: dict[str, str]) -> Response:
    saved = draft.answers.get(step.name, {})
    values = {f.name: ("" if f.secret else typed.get(f.name, saved.get(f.name, ""))) for f in step.fields}
    index = [s.name for s in STEPS].index(step.name)
    return render(
        request, "wizard_step.html", title=step.title, draft=draft, step=step, values=values, errors=errors,
        saved_secrets={f.name for f in step.fields if f.secret and saved.get(f.name)}, number=index + 1,
        steps=len(STEPS) + 1, back=_url(draft, STEPS[index - 1].name) if index else "/admin/tenants",
    )  # fmt: skip


def _validation_errors(model: type[BaseModel], values: dict[str, Any]) -> dict[str, str]:
    try:
        model.model_validate(values)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "form"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "Enter this"
            elif error["type"] == "string_pattern_mismatch":
                message = "Use digits only" if name.endswith("_id") else "Use digits, spaces, +, ( ) and - only"
            elif error["type"] == "string_too_short":
                message = f"Must be at least {error['ctx']['min_length']} characters"
            errors.setdefault(name, message[:1].upper() + message[1:])
        return errors
    return {}


def _candidate(answers: dict[str, dict[str, Any]]) -> TenantRuntime:
    """A tenant not yet created, for the live checks."""
    wa, gc = answers.get("whatsapp", {}), answers.get("genesys", {})
    return TenantRuntime(
        id="", name=str(answers.get("name", {}).get("name", "")), status="active",
        genesys_region=gc.get("region", ""), genesys_client_id=gc.get("client_id", ""),
        genesys_integration_id=gc.get("integration_id", ""), wa_waba_id=wa.get("waba_id", ""),
        wa_phone_number_id=wa.get("phone_number_id", ""), wa_display_phone_number=wa.get("display_phone_number", ""),
        settings={}, genesys_client_secret=gc.get("client_secret", ""),
        genesys_webhook_secret=gc.get("webhook_secret", ""),
        wa_access_token=wa.get("access_token", ""), wa_app_secret=wa.get("app_secret", ""),
        wa_verify_token=wa.get("verify_token", ""),
    )  # fmt: skip


async def _taken(runtime: Runtime, column: Any, value: str) -> bool:
    if not value:
        return False
    async with runtime.database.session() as session:
        return await session.scalar(select(Tenant.id).where(column == value)) is not None


async def _check(runtime: Runtime, step: str, answers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The step's own validation, then the live checks the API runs, as errors on their fields."""
    values = answers.get(step, {})
    if step == "name":
        return {} if str(values.get("name", "")).strip() else {"name": "Enter the organisation's name"}
    onboarding = Onboarding(runtime.http, runtime.settings)
    candidate = _candidate(answers)
    if step == "whatsapp":
        errors = _validation_errors(WhatsAppSection, values)
        if errors:
            return errors
        clashes = await _clashes(runtime, step, values)
        if clashes:
            return clashes
        phone = await onboarding.check_phone_number(candidate)
        return {} if phone.ok else {"access_token": _sentence(phone.message)}
    genesys = {key: value for key, value in values.items() if value not in ("", None)}
    errors = _validation_errors(GenesysCreateSection, genesys)
    if genesys.get("integration_id") and not genesys.get("webhook_secret"):
        errors.setdefault("webhook_secret", "Enter the integration's webhook secret (or leave the integration empty)")
    if genesys.get("webhook_secret") and not genesys.get("integration_id"):
        errors.setdefault("integration_id", "Enter the integration ID that goes with this webhook secret")
    if errors:
        return errors
    clashes = await _clashes(runtime, step, genesys)
    if clashes:
        return clashes
    token, credentials = await onboarding.genesys_token(candidate)
    if token is None:
        return {"client_secret": _sentence(credentials.message)}
    if genesys.get("integration_id"):
        integration = await onboarding.check_integration(candidate, token)
        if not integration.ok:
            return {"integration_id": _sentence(integration.message)}
    return {}


async def _clashes(runtime: Runtime, step: str, values: dict[str, Any]) -> dict[str, str]:
    """The first of the step's values another tenant already has, as an error on its field."""
    for (of_step, name), (column, message) in _UNIQUE.items():
        value = str(values.get(name) or "")
        if of_step == step and value and await _taken(runtime, column, value):
            return {name: message}
    return {}


async def _field_error(runtime: Runtime, step: str, name: str, value: str) -> str | None:
    """What is wrong with one typed value on its own: its format, or another tenant having it. Checks that
    need several fields (a token against its number, credentials against Genesys) wait for Continue."""
    if not value:
        return None
    model = _STEP_MODELS.get(step)
    if model is not None:
        error = _validation_errors(model, {name: value}).get(name)
        if error is not None:
            return error
    return (await _clashes(runtime, step, {name: value})).get(name)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


@router.get("/{draft_id}/check")
async def check_page(request: Request, runtime: RuntimeDep, me: Viewer, draft_id: str) -> Response:
    """Check your answers, choose the one-step setup, create."""
    draft = await _draft(runtime, me, draft_id)
    missing = [step for step in STEPS if not draft.answers.get(step.name) or step.name in draft.failing]
    if missing:
        return RedirectResponse(_url(draft, missing[0].name), status_code=303)
    return render(request, "wizard_check.html", title="Check your answers", draft=draft, steps=STEPS, errors={},
                  number=len(STEPS) + 1, total=len(STEPS) + 1)  # fmt: skip


@router.post("/{draft_id}/check")
async def create(request: Request, runtime: RuntimeDep, me: Viewer, draft_id: str) -> Response:
    """Create the tenant (with the setup steps chosen); failed steps are shown on their fields."""
    draft = await _draft(runtime, me, draft_id)
    form = await request.form()
    wa, gc = draft.answers.get("whatsapp", {}), dict(draft.answers.get("genesys", {}))
    create_integration = not gc.get("integration_id")
    genesys = {k: v for k, v in gc.items() if v not in ("", None)}
    body = TenantCreate.model_validate(
        {
            "name": draft.answers.get("name", {}).get("name", ""),
            "genesys": genesys,
            "whatsapp": wa,
            "setup": {"create_integration": create_integration, "subscribe_app": form.get("subscribe_app") == "yes"},
        }
    )
    try:
        tenant = await onboard_tenant(runtime, body, actor=me)
    except OnboardingFailed as exc:
        errors = {
            f"{_CHECK_FIELDS[name][0]}.{_CHECK_FIELDS[name][1]}": _sentence(check.message)
            for name, check in exc.checks.items()
            if not check.ok and name in _CHECK_FIELDS
        } or {"form": exc.message}
        return render(request, "wizard_check.html", title="Check your answers", draft=draft, steps=STEPS,
                      errors=errors, number=len(STEPS) + 1, total=len(STEPS) + 1)  # fmt: skip
    await delete_draft(runtime, draft)
    return Response(status_code=204, headers={"HX-Redirect": f"/admin/tenants/{tenant.id}/webhooks?created=1"})


@router.post("/{draft_id}/discard")
async def discard(request: Request, runtime: RuntimeDep, me: Viewer, draft_id: str) -> Response:
    """Abandon the draft."""
    await delete_draft(runtime, await _draft(runtime, me, draft_id))
    return Response(status_code=204, headers={"HX-Redirect": "/admin/tenants"})


@router.post("/{draft_id}/{step_name}/fields/{field_name}")
async def field_check(
    request: Request, runtime: RuntimeDep, me: Viewer, draft_id: str, step_name: str, field_name: str
) -> Response:
    """The live check of one field as it changes: the field again, with its error or without."""
    draft = await _draft(runtime, me, draft_id)
    step = _BY_NAME.get(step_name)
    field = next((f for f in step.fields if f.name == field_name and not f.secret), None) if step else None
    if step is None or field is None:
        raise NotFound("no such field")
    form = await request.form()
    value = str(form.get(field.name, "")).strip()
    error = await _field_error(runtime, step.name, field.name, value)
    return render(
        request, "partials/wizard_field.html", draft=draft, step=step, f=field, error=error,
        values={field.name: value}, saved_secrets=set(),
    )  # fmt: skip


@router.get("/{draft_id}/{step_name}")
async def step_page(request: Request, runtime: RuntimeDep, me: Viewer, draft_id: str, step_name: str) -> Response:
    """One step, filled with what the draft holds (never its secrets)."""
    draft = await _draft(runtime, me, draft_id)
    step = _BY_NAME.get(step_name)
    if step is None:
        raise NotFound("no such step")
    return _show(request, draft, step, {}, {})


@router.post("/{draft_id}/{step_name}")
async def step_submit(request: Request, runtime: RuntimeDep, me: Viewer, draft_id: str, step_name: str) -> Response:
    """Save the answers, run the step's checks; the next step, or this one with its errors."""
    draft = await _draft(runtime, me, draft_id)
    step = _BY_NAME.get(step_name)
    if step is None:
        raise NotFound("no such step")
    form = await request.form()
    typed = {f.name: str(form.get(f.name, "")).strip() for f in step.fields}
    previous = draft.answers.get(step.name, {})
    answers = {f.name: (typed[f.name] or previous.get(f.name, "")) if f.secret else typed[f.name] for f in step.fields}
    trial = {**draft.answers, step.name: answers}
    errors = await _check(runtime, step.name, trial)
    # Answers are kept even when a check fails: the person fixes one field, not all of them.
    failing = [name for name in draft.failing if name != step.name] + ([step.name] if errors else [])
    draft = dataclasses.replace(draft, answers=trial, failing=failing)
    await save_draft(runtime, draft)
    if errors:
        return _show(request, draft, step, errors, typed)
    return Response(status_code=204, headers={"HX-Redirect": _url(draft, _NEXT[step.name])})
