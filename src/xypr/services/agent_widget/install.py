"""Installing the widget in a tenant's Genesys organisation as an Interaction Widget (client app).

Genesys's way: `POST /api/v2/integrations` with the integration type
`embedded-client-app-interaction-widget` (client-app-create-integration-interaction-widget-request.json),
then `PUT …/{id}/config/current` with its name and properties (the URL with Genesys's `{{…}}`
placeholders), then `PATCH …/{id}` `intendedState: ENABLED`. Installing again reconfigures the
widget already there (found by name) instead of adding a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import httpx

from xypr.core.errors import Conflict, PermanentError, ServiceUnavailable, TransientError
from xypr.core.logging import get_logger
from xypr.runtime import Runtime
from xypr.tenants.service import TenantRuntime

__all__ = ["INTERACTION_WIDGET", "WIDGET_NAME", "WidgetInstallation", "install_widget", "widget_url"]

log = get_logger(__name__)

INTERACTION_WIDGET: Final = "embedded-client-app-interaction-widget"
WIDGET_NAME: Final = "WhatsApp (Xypr)"
# What the frame may do: run our scripts on our origin, submit forms, open the sign-in popup, download media.
IFRAME_SANDBOX: Final = "allow-scripts,allow-same-origin,allow-forms,allow-popups,allow-modals,allow-downloads"


@dataclass(frozen=True, slots=True)
class WidgetInstallation:
    """The installed widget: its Genesys integration id, URL and state."""

    integration_id: str
    url: str
    state: str
    created: bool


def widget_url(public_url: str) -> str:
    """The widget's URL as Genesys stores it: its placeholders are filled in for each conversation."""
    return (
        f"{public_url.rstrip('/')}/widget?gcConversationId={{{{gcConversationId}}}}"
        "&gcHostOrigin={{gcHostOrigin}}&gcTargetEnv={{gcTargetEnv}}&langTag={{gcLangTag}}"
    )


async def _call(
    runtime: Runtime, tenant: TenantRuntime, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    try:
        response = await runtime.genesys.request(tenant.genesys_credentials, method, path, body)
    except PermanentError as exc:  # the stored credentials, not the request, are what Genesys refused
        raise Conflict(f"Genesys Cloud issued no token for this tenant: {exc.message}") from exc
    except TransientError as exc:
        raise ServiceUnavailable(f"Genesys Cloud did not answer the token request ({exc.message}); try again") from exc
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"Genesys Cloud unreachable ({type(exc).__name__}); try again") from exc
    if response.status_code in (400, 403, 404):
        try:
            message = str(response.json().get("message") or response.status_code)
        except ValueError:
            message = str(response.status_code)
        raise Conflict(f"Genesys Cloud refused to install the widget ({response.status_code}): {message}")
    if not response.is_success:
        raise ServiceUnavailable(f"Genesys Cloud answered HTTP {response.status_code}; try again")
    answer: dict[str, Any] = response.json() if response.content else {}
    return answer


async def install_widget(runtime: Runtime, tenant: TenantRuntime, *, name: str = WIDGET_NAME) -> WidgetInstallation:
    """Create (or reconfigure) and enable the Interaction Widget in the tenant's Genesys organisation."""
    url = widget_url(runtime.settings.public_url)
    listing = await _call(runtime, tenant, "GET", "/api/v2/integrations?pageSize=100")
    existing = next(
        (
            entity
            for entity in listing.get("entities") or []
            if (entity.get("integrationType") or {}).get("id") == INTERACTION_WIDGET and entity.get("name") == name
        ),
        None,
    )
    created = existing is None
    if existing is None:
        existing = await _call(
            runtime, tenant, "POST", "/api/v2/integrations", {"integrationType": {"id": INTERACTION_WIDGET}}
        )
    integration_id = str(existing["id"])
    current = await _call(runtime, tenant, "GET", f"/api/v2/integrations/{integration_id}/config/current")
    await _call(
        runtime, tenant, "PUT", f"/api/v2/integrations/{integration_id}/config/current",
        {
            "name": name,
            "version": current.get("version", 1),
            "properties": {"url": url, "sandbox": IFRAME_SANDBOX, "communicationTypeFilter": "message", "groups": []},
            "advanced": {},
            "notes": "Xypr: WhatsApp ticks, templates and the 24-hour window beside the conversation.",
            "credentials": {},
        },
    )  # fmt: skip
    enabled = await _call(
        runtime, tenant, "PATCH", f"/api/v2/integrations/{integration_id}", {"intendedState": "ENABLED"}
    )
    log.info("widget.installed", tenant_id=tenant.id, integration_id=integration_id, created=created)
    return WidgetInstallation(integration_id, url, str(enabled.get("intendedState", "ENABLED")), created)
