"""How the widget page is served inside Genesys: the frame policy, the Genesys login host, the rendering."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape

from xypr.config import Settings
from xypr.genesys.client import login_base
from xypr.tenants.schemas import GENESYS_REGIONS

__all__ = ["environment", "frame_ancestors", "genesys_region_of", "page_policy", "script_json"]


@cache
def environment() -> Environment:
    """The widget's Jinja2 templates (autoescaped)."""
    env = Environment(
        loader=PackageLoader("xypr.services.agent_widget", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = _clock
    env.filters["day"] = _day
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)  # compiled once, at start-up, not during an agent's first view
    return env


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def _day(moment: datetime) -> str:
    return moment.strftime("%d %b %Y %H:%M UTC")


def frame_ancestors(settings: Settings) -> list[str]:
    """Who may frame the widget: every Genesys Cloud region's hosts, plus the configured extra origins
    (`XYPR_WIDGET_FRAME_ANCESTORS`; the sandbox adds its own origin)."""
    origins = [f"https://*.{region}" for region in sorted(GENESYS_REGIONS)]
    extra = [origin.strip().rstrip("/") for origin in settings.widget_frame_ancestors.split(",") if origin.strip()]
    return origins + extra


def page_policy(settings: Settings) -> str:
    """The widget's Content-Security-Policy: own scripts only, and framed by Genesys alone."""
    login = settings.genesys_login_url
    # The media copies may be presigned S3 URLs on another host, hence https: for images and media.
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; "
        "media-src 'self' blob: https:; connect-src 'self'; base-uri 'none'; object-src 'none'; "
        f"form-action 'self' {urlsplit(login).scheme + '://' + urlsplit(login).netloc if login else 'https:'}; "
        f"frame-ancestors {' '.join(frame_ancestors(settings))}"
    )


def genesys_region_of(host_origin: str | None, target_env: str | None) -> str | None:
    """The Genesys Cloud domain of the frame's host (`https://apps.mypurecloud.ie` → `mypurecloud.ie`)."""
    host = (urlsplit(host_origin or "").hostname or "").lower()
    for region in GENESYS_REGIONS:
        if host == region or host.endswith("." + region):
            return region
    del target_env  # the host is enough; kept in the signature to show it was considered
    return None


def login_host(settings: Settings, region: str | None) -> str | None:
    """Where the agent signs in: the region's login host, or the configured override (sandbox)."""
    if settings.genesys_login_url:
        return settings.genesys_login_url.rstrip("/")
    return login_base(region) if region else None


def script_json(value: Any) -> str:
    """JSON safe inside a `<script type="application/json">` element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
