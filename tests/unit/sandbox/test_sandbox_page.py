"""The sandbox page: one self-contained HTML page with stable ids, safe config, and a nonce-locked script."""

from __future__ import annotations

import json
import re

import httpx
from fastapi import FastAPI

from xypr.sandbox.page import create_sandbox_page_router

DEMO = {"phone_number_id": "100000000000001", "integration_id": "5e3c7a52", "tenant_name": "Demo </script><b>x"}


async def _page() -> httpx.Response:
    app = FastAPI()
    app.include_router(
        create_sandbox_page_router(meta_prefix="/sandbox/meta/", genesys_prefix="/sandbox/genesys", demo=DEMO)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://xypr.test") as client:
        return await client.get("/sandbox")


async def test_page_renders_with_the_stable_element_ids() -> None:
    answer = await _page()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert "<title>Xypr sandbox</title>" in html
    for element in ("customer-input", "customer-send", "customer-thread", "agent-input", "agent-send", "agent-thread"):
        assert f'id="{element}"' in html


async def test_page_is_self_contained() -> None:
    html = (await _page()).text
    (link,) = re.findall(r"<link[^>]*>", html)
    assert link.startswith('<link rel="icon" href="data:')
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html
    assert ".innerHTML" not in html


async def test_config_is_escaped_json_and_the_script_runs_under_the_csp_nonce() -> None:
    answer = await _page()
    html = answer.text
    raw = re.search(r'<script type="application/json" id="xypr-config">(.*?)</script>', html, re.S)
    assert raw is not None
    assert "</script>" not in raw.group(1)
    config = json.loads(raw.group(1))
    assert config == {"metaPrefix": "/sandbox/meta", "genesysPrefix": "/sandbox/genesys", "demo": DEMO}
    nonce = re.search(r"'nonce-([^']+)'", answer.headers["content-security-policy"])
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in html
    assert "__XYPR_" not in html
    assert (await _page()).headers["content-security-policy"] != answer.headers["content-security-policy"]
