"""The tenant's WhatsApp message templates (`GET /{waba_id}/message_templates`), parsed and cached."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import orjson

from xypr.backends.cache.base import Cache
from xypr.core.errors import ServiceUnavailable
from xypr.core.logging import get_logger
from xypr.tenants.service import TenantRuntime

__all__ = [
    "CATALOG_TTL_SECONDS",
    "Placeholder",
    "WabaTemplate",
    "fetch_templates",
    "parse_templates",
    "render",
]

log = get_logger(__name__)

# Templates change rarely (an approval takes minutes to days): a few minutes of staleness is fine and
# keeps ten open widgets per agent from each asking Meta.
CATALOG_TTL_SECONDS: Final = 300.0
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_FORMATS: Final = frozenset({"IMAGE", "VIDEO", "DOCUMENT"})


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One value the agent fills in: where it goes (`header`, `body`, `button`), its name and position."""

    component: str
    name: str
    index: int = 0  # a button's position among the template's buttons


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """A template button as approved: quick reply, URL (maybe with a dynamic suffix) or phone number."""

    type: str
    text: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class WabaTemplate:
    """An approved template the widget offers, with everything the form and the preview need."""

    name: str
    language: str
    status: str
    category: str
    header_format: str | None = None
    header_text: str | None = None
    body: str = ""
    footer: str | None = None
    buttons: tuple[TemplateButton, ...] = ()
    placeholders: tuple[Placeholder, ...] = field(default=())

    @property
    def key(self) -> str:
        """The picker's value: `name|language` (a name exists once per language)."""
        return f"{self.name}|{self.language}"

    @property
    def approved(self) -> bool:
        """Only an approved template can be sent (Meta refuses the others)."""
        return self.status == "APPROVED"

    @property
    def media_header(self) -> bool:
        """True when the header is an image, video or document chosen at send time."""
        return self.header_format in MEDIA_FORMATS


def _names(text: str | None) -> list[str]:
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text or ""):
        if name not in seen:
            seen.append(name)
    return seen


def _template(item: dict[str, Any]) -> WabaTemplate | None:
    name, language = item.get("name"), item.get("language")
    if not isinstance(name, str) or not isinstance(language, str):
        return None
    header_format = header_text = footer = None
    body = ""
    buttons: list[TemplateButton] = []
    placeholders: list[Placeholder] = []
    for component in item.get("components") or []:
        if not isinstance(component, dict):
            continue
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            header_format = str(component.get("format", "TEXT")).upper()
            if header_format == "TEXT":
                header_text = str(component.get("text") or "")
                placeholders += [Placeholder("header", n) for n in _names(header_text)]
        elif kind == "BODY":
            body = str(component.get("text") or "")
            placeholders += [Placeholder("body", n) for n in _names(body)]
        elif kind == "FOOTER":
            footer = str(component.get("text") or "") or None
        elif kind == "BUTTONS":
            for position, button in enumerate(component.get("buttons") or []):
                if not isinstance(button, dict):
                    continue
                button_type = str(button.get("type", "")).upper()
                url = button.get("url") if isinstance(button.get("url"), str) else None
                buttons.append(TemplateButton(button_type, str(button.get("text") or ""), url))
                if button_type == "URL" and _names(url):
                    placeholders.append(Placeholder("button", _names(url)[0], position))
    return WabaTemplate(
        name=name,
        language=language,
        status=str(item.get("status", "")).upper(),
        category=str(item.get("category", "")).upper(),
        header_format=header_format,
        header_text=header_text,
        body=body,
        footer=footer,
        buttons=tuple(buttons),
        placeholders=tuple(placeholders),
    )


def parse_templates(answer: dict[str, Any], *, approved_only: bool = True) -> list[WabaTemplate]:
    """The approved templates of a `message_templates` answer (every one: `approved_only=False`), by name
    then language (pure)."""
    parsed = [t for t in (_template(i) for i in answer.get("data") or [] if isinstance(i, dict)) if t is not None]
    kept = [t for t in parsed if t.approved or not approved_only]
    return sorted(kept, key=lambda t: (t.name, t.language))


def render(text: str | None, values: dict[str, str]) -> str:
    """A template text with its placeholders replaced by the values given (missing ones stay visible)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or m.group(0), text or "")


def _cache_key(tenant: TenantRuntime) -> str:
    return f"{tenant.id}:widget:templates:{tenant.wa_waba_id}"


async def fetch_templates(
    http: httpx.AsyncClient,
    cache: Cache,
    tenant: TenantRuntime,
    *,
    graph_url: str,
    api_version: str,
    approved_only: bool = True,
) -> list[WabaTemplate]:
    """The tenant's approved templates (every one: `approved_only=False`), from the cache or Meta (every
    page of the answer)."""
    cached = await cache.get(_cache_key(tenant))
    if cached is not None:
        answer: dict[str, Any] = {"data": orjson.loads(cached)}
        return parse_templates(answer, approved_only=approved_only)
    url: str | None = f"{graph_url.rstrip('/')}/{api_version}/{tenant.wa_waba_id}/message_templates"
    params: dict[str, str] | None = {"limit": "100", "fields": "name,language,status,category,components"}
    items: list[Any] = []
    for _page in range(20):  # at most 2,000 templates: Meta allows 250 per WABA (6,000 when verified)
        if url is None:
            break
        try:
            response = await http.get(url, params=params, headers={"Authorization": f"Bearer {tenant.wa_access_token}"})
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"WhatsApp templates unreachable ({type(exc).__name__}); try again") from exc
        if not response.is_success:
            log.warning("widget.templates_refused", tenant_id=tenant.id, status=response.status_code)
            raise ServiceUnavailable(f"Meta answered HTTP {response.status_code} for the templates; try again")
        page = response.json()
        items += page.get("data") or []
        next_url = (page.get("paging") or {}).get("next")
        url, params = (next_url if isinstance(next_url, str) and next_url.startswith(graph_url) else None), None
    await cache.set(_cache_key(tenant), orjson.dumps(items), ttl=CATALOG_TTL_SECONDS)
    return parse_templates({"data": items}, approved_only=approved_only)
