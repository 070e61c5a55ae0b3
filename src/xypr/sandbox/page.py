"""The sandbox page: a WhatsApp-like phone (the customer) beside a Genesys-like agent panel, on the emulators.

The markup is `page.html`; its script and stylesheet are `xypr/web/static/sandbox/`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from xypr.web import STATIC_PREFIX

__all__ = ["create_sandbox_page_router"]


@cache
def _template() -> str:
    return files("xypr.sandbox").joinpath("page.html").read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a `<script>` element: no `<`, `>` or `&` can close it or start markup."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# Same-origin only: the page, its assets, the emulators' control routes and Xypr's media URLs.
_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
_HEADERS = {"Content-Security-Policy": _POLICY, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def create_sandbox_page_router(*, meta_prefix: str, genesys_prefix: str, demo: dict[str, Any]) -> APIRouter:
    """`GET /sandbox`; `demo` names `phone_number_id`, `waba_id` and `integration_id` of the demo tenant."""
    config = {"metaPrefix": meta_prefix.rstrip("/"), "genesysPrefix": genesys_prefix.rstrip("/"), "demo": demo}
    page = _template().replace("__XYPR_STATIC__", STATIC_PREFIX).replace("__XYPR_CONFIG__", _script_json(config))
    router = APIRouter()

    @router.get("/sandbox", response_class=HTMLResponse, include_in_schema=False)
    async def sandbox_page() -> HTMLResponse:
        """The page; its script and stylesheet come from `/static/sandbox/`, and nothing from another host."""
        return HTMLResponse(page, headers=_HEADERS)

    return router
