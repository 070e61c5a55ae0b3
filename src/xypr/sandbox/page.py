"""The sandbox page: a WhatsApp-like phone (the customer) beside a Genesys-like agent panel, on the emulators."""

from __future__ import annotations

import json
import secrets
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["create_sandbox_page_router"]


@cache
def _template() -> str:
    return files("xypr.sandbox").joinpath("page.html").read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a `<script>` element: no `<`, `>` or `&` can close it or start markup."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def create_sandbox_page_router(*, meta_prefix: str, genesys_prefix: str, demo: dict[str, Any]) -> APIRouter:
    """`GET /sandbox`: one self-contained page; `demo` names `phone_number_id` and `integration_id`."""
    config = {"metaPrefix": meta_prefix.rstrip("/"), "genesysPrefix": genesys_prefix.rstrip("/"), "demo": demo}
    page = _template().replace("__XYPR_CONFIG__", _script_json(config))
    router = APIRouter()

    @router.get("/sandbox", response_class=HTMLResponse, include_in_schema=False)
    async def sandbox_page() -> HTMLResponse:
        """The page; its one inline script runs under a per-response CSP nonce."""
        nonce = secrets.token_urlsafe(16)
        policy = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "img-src 'self' data: http: https:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'self'"
        )
        headers = {"Content-Security-Policy": policy, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        return HTMLResponse(page.replace("__XYPR_NONCE__", nonce), headers=headers)

    return router
