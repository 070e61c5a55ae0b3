"""The sandbox page: one HTML page with stable ids and safe config; its script and style are our own static files."""

from __future__ import annotations

import json
import re

import httpx
from fastapi import FastAPI

from xypr.sandbox.page import create_sandbox_page_router
from xypr.web import STATIC_DIR

DEMO = {"phone_number_id": "100000000000001", "integration_id": "5e3c7a52", "tenant_name": "Demo </script><b>x"}
SCRIPT = STATIC_DIR / "sandbox" / "sandbox.js"
STYLE = STATIC_DIR / "sandbox" / "sandbox.css"


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
    assert html.count("<h1") == 1
    for element in (
        "customer-input", "customer-send", "customer-thread", "customer-file", "customer-attach", "customer-location",
        "location-form", "agent-input", "agent-send", "agent-thread", "agent-customer", "agent-file", "agent-attach",
        "agent-quick", "quick-form", "agent-template", "template-form", "template-name",
    ):  # fmt: skip
        assert f'id="{element}"' in html


async def test_every_input_has_a_label_and_every_button_a_name() -> None:
    html = (await _page()).text
    labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', html)) | set(
        re.findall(r'<(?:input|select|textarea)[^>]*id="([^"]+)"[^>]*aria-label=', html)
    )
    for element in re.findall(r'<(?:input|select|textarea)[^>]*id="([^"]+)"', html):
        assert element in labelled, element
    for button in re.findall(r"<button[^>]*>.*?</button>", html, re.S):
        visible = re.sub(r"<[^>]+>", "", button).strip()
        assert "aria-label=" in button or visible, button


async def test_page_and_its_assets_ask_no_other_host_and_never_use_inner_html() -> None:
    html = (await _page()).text
    assert re.findall(r'<script[^>]*src="([^"]+)"', html) == ["/static/sandbox/sandbox.js"]
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', html) == ["/static/sandbox/sandbox.css"]
    for text in (html, SCRIPT.read_text(), STYLE.read_text()):
        assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text)
        assert "@import" not in text
        assert ".innerHTML" not in text
        assert "insertAdjacentHTML" not in text
    assert 'style="' not in html


async def test_config_is_escaped_json_and_scripts_run_only_from_our_origin() -> None:
    answer = await _page()
    html = answer.text
    raw = re.search(r'<script type="application/json" id="xypr-config">(.*?)</script>', html, re.S)
    assert raw is not None
    assert "</script>" not in raw.group(1)
    config = json.loads(raw.group(1))
    assert config == {"metaPrefix": "/sandbox/meta", "genesysPrefix": "/sandbox/genesys", "demo": DEMO}
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "img-src 'self' data:" in policy
    assert "unsafe-inline" not in policy
    assert "__XYPR_" not in html
