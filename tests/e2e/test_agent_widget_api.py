"""The agent widget's endpoints over HTTP against the whole bridge: who may see and send what, how each send
travels, the frame policy, the sign-in the emulated Genesys offers it, and installing it in Genesys."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from tests.conftest import embedded_settings
from tests.support.auth import login_as
from tests.support.bridge import Bridge, eventually, running_bridge, tenant_spec
from xypr.auth.principal import Role
from xypr.config import Settings
from xypr.services.gateway import middleware as gateway_middleware
from xypr.state.models import Conversation, Message

CUSTOMER = "16505551234"


async def _conversation(bridge: Bridge, wa_id: str) -> str:
    async def known() -> str | None:
        async with bridge.runtime.database.session() as session:
            value = await session.scalar(
                select(Conversation.genesys_conversation_id).where(Conversation.wa_id == wa_id)
            )
        return value

    return await eventually(known, within=20)


async def _sent(bridge: Bridge, kind: str) -> dict[str, Any] | None:
    for sent in reversed(await bridge.whatsapp_sent(to=CUSTOMER)):
        if sent["type"] == kind:
            body: dict[str, Any] = sent["body"]
            return body
    return None


@pytest.fixture
async def bridge(tmp_path: Path) -> Any:
    async with running_bridge(embedded_settings(tmp_path)) as running:
        yield running


async def test_widget_views_are_for_the_tenants_people_and_sends_for_its_agents(bridge: Bridge) -> None:
    await bridge.customer_says(CUSTOMER, "Hello there")
    conversation = await _conversation(bridge, CUSTOMER)
    view = f"/widget/api/conversations/{conversation}"

    assert (await bridge.client.get(view)).status_code == 401
    agent = await login_as(bridge, Role.AGENT)
    shown = await bridge.client.get(view, headers=agent)
    assert shown.status_code == 200
    assert "Hello there" in shown.text
    assert "Sheena Nelson" in shown.text

    other = tenant_spec()
    await bridge.add_tenant(other)
    stranger = await login_as(bridge, Role.AGENT, other)
    refused = await bridge.client.get(view, headers=stranger)
    assert refused.status_code == 404
    assert "Conversation not found" in refused.text
    assert "Hello there" not in refused.text
    assert (await bridge.client.get(view + "/events", headers=stranger)).status_code == 404
    answer = await bridge.client.post(view + "/messages", json={"text": "hi"}, headers=stranger)
    assert answer.status_code == 404

    supervisor = await login_as(bridge, Role.SUPERVISOR)
    watched = await bridge.client.get(view, headers=supervisor)
    assert watched.status_code == 200
    assert 'id="composer"' not in watched.text
    for path, body in (("/messages", {"text": "hi"}), ("/reactions", {"messageId": "x", "emoji": "👍"})):
        assert (await bridge.client.post(view + path, json=body, headers=supervisor)).status_code == 403
    admin = await login_as(bridge, Role.XYPR_ADMIN)
    assert (await bridge.client.get(view, headers=admin)).status_code == 403  # platform people have no tenant


async def test_sends_travel_through_genesys_or_straight_to_whatsapp(bridge: Bridge) -> None:
    await bridge.customer_says(CUSTOMER, "Can you help?")
    conversation = await _conversation(bridge, CUSTOMER)
    base = f"/widget/api/conversations/{conversation}"
    agent = await login_as(bridge, Role.AGENT)

    # Text through Genesys: in the transcript, then on WhatsApp through the outbound path.
    sent = await bridge.client.post(base + "/messages", json={"text": "Of course."}, headers=agent)
    assert sent.status_code == 202, sent.text
    assert sent.json()["genesysMessageId"]
    transcript = (await bridge.genesys.get(f"/_sandbox/conversations/{conversation}/transcript")).json()
    assert [m["text"] for m in transcript["messages"] if m["direction"] == "outbound"] == ["Of course."]
    text = await eventually(lambda: _sent(bridge, "text"))
    assert text["text"]["body"] == "Of course."

    # Buttons through Genesys become WhatsApp reply buttons.
    answer = await bridge.client.post(
        base + "/interactive", json={"kind": "buttons", "text": "Which one?", "options": ["Red", "Blue"]}, headers=agent
    )
    assert answer.status_code == 202, answer.text
    buttons = await eventually(lambda: _sent(bridge, "interactive"))
    assert [b["reply"]["title"] for b in buttons["interactive"]["action"]["buttons"]] == ["Red", "Blue"]
    listed = {"kind": "list", "text": "Pick a size", "options": ["S", "M"], "listButton": "Sizes"}
    assert (await bridge.client.post(base + "/interactive", json=listed, headers=agent)).status_code == 202

    async def a_list() -> dict[str, Any] | None:
        body = await _sent(bridge, "interactive")
        return body if body and body["interactive"]["type"] == "list" else None

    menu = (await eventually(a_list))["interactive"]
    assert menu["action"]["button"] == "Sizes"
    assert [row["title"] for row in menu["action"]["sections"][0]["rows"]] == ["S", "M"]
    assert menu["body"]["text"] == "Pick a size"
    # Each shape's limits are its schema's: 3 reply buttons of 20 characters, 10 rows of 24.
    too_many = {"kind": "buttons", "text": "x", "options": ["a", "b", "c", "d"]}
    refused = await bridge.client.post(base + "/interactive", json=too_many, headers=agent)
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "buttons.options"
    long_title = {"kind": "buttons", "text": "x", "options": ["Twenty-one characters"]}
    assert (await bridge.client.post(base + "/interactive", json=long_title, headers=agent)).status_code == 400
    long_row = {**long_title, "kind": "list"}
    assert (await bridge.client.post(base + "/interactive", json=long_row, headers=agent)).status_code == 202
    eleven = {"kind": "list", "text": "x", "options": [str(n) for n in range(11)]}
    assert (await bridge.client.post(base + "/interactive", json=eleven, headers=agent)).status_code == 400
    a_list_button = {"kind": "buttons", "text": "x", "options": ["a"], "listButton": "Sizes"}  # a list's only
    assert (await bridge.client.post(base + "/interactive", json=a_list_button, headers=agent)).status_code == 400

    # A reaction and a quoted reply go straight to WhatsApp, on the customer's message.
    async with bridge.runtime.database.session() as session:
        customer_message = await session.scalar(select(Message).where(Message.direction == "inbound"))
    assert customer_message is not None
    reaction = {"messageId": customer_message.id, "emoji": "👍"}
    assert (await bridge.client.post(base + "/reactions", json=reaction, headers=agent)).status_code == 202
    reacted = await eventually(lambda: _sent(bridge, "reaction"))
    assert reacted["reaction"] == {"message_id": customer_message.wamid, "emoji": "👍"}
    reply = {"text": "About that:", "replyTo": customer_message.id}
    assert (await bridge.client.post(base + "/messages", json=reply, headers=agent)).status_code == 202

    async def quoted() -> dict[str, Any] | None:
        body = await _sent(bridge, "text")
        return body if body and body.get("context") else None

    assert (await eventually(quoted))["context"] == {"message_id": customer_message.wamid}

    # Files: WhatsApp's types and sizes are checked before anything is kept.
    refused = await bridge.client.post(
        base + "/media", files={"file": ("a.gif", b"GIF89a", "image/gif")}, headers=agent
    )
    assert refused.status_code == 415
    assert "does not accept image/gif" in refused.json()["error"]["message"]
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")
    accepted = await bridge.client.post(
        base + "/media", files={"file": ("photo.png", png, "image/png")}, data={"caption": "Here"}, headers=agent
    )
    assert accepted.status_code == 202, accepted.text
    image = await eventually(lambda: _sent(bridge, "image"))
    assert image["image"]["caption"] == "Here"
    assert image["image"]["id"]  # uploaded to Meta first


async def test_an_agent_file_may_be_as_large_as_whatsapp_takes_for_its_type(
    bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bridge.customer_says(CUSTOMER, "Send me the contract")
    base = f"/widget/api/conversations/{await _conversation(bridge, CUSTOMER)}"
    agent = await login_as(bridge, Role.AGENT)

    # Three times the API's body limit: a document may be 100 MB.
    pdf = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024)
    accepted = await bridge.client.post(
        base + "/media", files={"file": ("contract.pdf", pdf, "application/pdf")}, headers=agent, timeout=60
    )
    assert accepted.status_code == 202, accepted.text
    document = await eventually(lambda: _sent(bridge, "document"), within=30)
    assert document["document"]["filename"] == "contract.pdf"
    assert document["document"]["id"]

    # Each type keeps its own limit: an image may be 5 MB.
    png = bytes.fromhex("89504e470d0a1a0a") + b"0" * (5 * 1024 * 1024)
    refused = await bridge.client.post(
        base + "/media", files={"file": ("huge.png", png, "image/png")}, headers=agent, timeout=60
    )
    assert refused.status_code == 413
    assert refused.json()["error"]["message"] == "file: larger than WhatsApp's 5 MB for image/png"

    # The gateway bounds every upload, also one streamed without a length (its bound lowered here).
    monkeypatch.setattr(gateway_middleware, "UPLOAD_BODY_BYTES", 2 * 1024 * 1024)
    request = bridge.client.build_request(
        "POST", base + "/media", files={"file": ("contract.pdf", pdf, "application/pdf")}, headers=agent
    )
    body = request.read()

    async def chunks() -> Any:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    headers = {**agent, "content-type": request.headers["content-type"]}
    streamed = await bridge.client.post(base + "/media", content=chunks(), headers=headers, timeout=60)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    kept = await bridge.client.post(base + "/media", content=body, headers=headers, timeout=60)
    assert kept.status_code == 413  # announced by Content-Length: refused before a byte is read


async def test_free_text_waits_for_the_window_templates_do_not(bridge: Bridge) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from xypr.backends.db.base import utcnow

    await bridge.customer_says(CUSTOMER, "Hi")
    conversation = await _conversation(bridge, CUSTOMER)
    async with bridge.runtime.database.session() as session:
        await session.execute(update(Conversation).values(last_customer_message_at=utcnow() - timedelta(hours=25)))
    base = f"/widget/api/conversations/{conversation}"
    agent = await login_as(bridge, Role.AGENT)
    closed = await bridge.client.post(base + "/messages", json={"text": "late"}, headers=agent)
    assert closed.status_code == 409
    assert closed.json()["error"]["code"] == "window_closed"

    picker = await bridge.client.get(base + "/templates", headers=agent)
    assert picker.status_code == 200
    assert "order_update (en_US)" in picker.text
    assert "new_feature" not in picker.text  # pending
    missing = await bridge.client.post(
        base + "/templates", json={"template": "order_update|es", "values": {"body.1": "Ana"}}, headers=agent
    )
    assert missing.status_code == 400
    pending = await bridge.client.post(base + "/templates", json={"template": "new_feature|en_US"}, headers=agent)
    assert pending.status_code == 409
    assert pending.json()["error"] == {
        "code": "conflict",
        "message": "template: new_feature|en_US is pending; only approved templates can be sent",
        "field": "template",
    }
    unknown = await bridge.client.post(base + "/templates", json={"template": "no_such_one|en_US"}, headers=agent)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["field"] == "template"
    values = {"body.1": "Ana", "body.2": "A-7", "body.3": "lunes"}
    sent = await bridge.client.post(
        base + "/templates", json={"template": "order_update|es", "values": values}, headers=agent
    )
    assert sent.status_code == 202, sent.text
    template = await eventually(lambda: _sent(bridge, "template"))
    assert template["template"]["name"] == "order_update"
    assert template["template"]["language"] == {"code": "es"}


async def test_widget_page_is_framed_by_genesys_only_and_signs_in_silently(bridge: Bridge) -> None:
    page = await bridge.client.get("/widget", params={"gcConversationId": "c1", "langTag": "es"})
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors https://*." in policy
    assert bridge.url in policy  # the sandbox's own desktop, in development
    assert "x-frame-options" not in page.headers
    assert 'lang="es"' in page.text

    # The emulated Genesys: no session → the silent sign-in reports login_required in the fragment.
    client_id = bridge.runtime.settings.genesys_login_client_id
    params = {"response_type": "token", "client_id": client_id, "redirect_uri": f"{bridge.url}/widget/signed-in",
              "state": "s1", "prompt": "none"}  # fmt: skip
    silent = await bridge.genesys.get("/oauth/authorize", params=params)
    assert silent.status_code == 302
    fragment = parse_qs(urlsplit(silent.headers["location"]).fragment)
    assert fragment["error"] == ["login_required"]
    assert fragment["state"] == ["s1"]

    # Signed in once (the desktop): the next authorize answers the token at once.
    signed = await bridge.genesys.post(
        "/desktop/sign-in", data={"login": "alex@sandbox.example", "next": ""}, follow_redirects=False
    )
    assert signed.status_code == 303
    again = await bridge.genesys.get("/oauth/authorize", params=params)  # the session cookie, kept like a browser
    token = parse_qs(urlsplit(again.headers["location"]).fragment)
    assert token["state"] == ["s1"]
    exchanged = await bridge.client.post(
        "/auth/token",
        json={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token["access_token"][0],
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["role"] == "agent"


async def test_install_creates_the_interaction_widget_once(bridge: Bridge) -> None:
    admin = await login_as(bridge, Role.TENANT_ADMIN)
    tenant_id = (await bridge.client.get("/auth/info", headers=admin)).json()["tenant"]["id"]
    first = await bridge.client.post(f"/tenants/{tenant_id}/widget/install", headers=admin)
    assert first.status_code == 200, first.text
    again = await bridge.client.post(f"/tenants/{tenant_id}/widget/install", headers=admin)
    assert again.json()["integrationId"] == first.json()["integrationId"]
    assert again.json()["created"] is False
    assert again.json()["url"] == (
        f"{bridge.url}/widget?gcConversationId={{{{gcConversationId}}}}&gcHostOrigin={{{{gcHostOrigin}}}}"
        "&gcTargetEnv={{gcTargetEnv}}&langTag={{gcLangTag}}"
    )
    apps = (await bridge.genesys.get("/_sandbox/client-apps")).json()
    widgets = [a for a in apps if a["integrationType"]["id"] == "embedded-client-app-interaction-widget"]
    assert len(widgets) == 1
    assert widgets[0]["intendedState"] == "ENABLED"
    agent = await login_as(bridge, Role.AGENT)
    assert (await bridge.client.post(f"/tenants/{tenant_id}/widget/install", headers=agent)).status_code == 403


async def test_the_live_stream_sends_the_thread_then_each_change(backend_settings: Settings) -> None:
    async with running_bridge(backend_settings.model_copy(update={"widget_poll_seconds": 0.2})) as bridge:
        await bridge.customer_says(CUSTOMER, "First")
        conversation = await _conversation(bridge, CUSTOMER)
        agent = await login_as(bridge, Role.AGENT)
        events: list[tuple[str, dict[str, Any]]] = []

        async def read() -> None:
            url = f"/widget/api/conversations/{conversation}/events"
            async with bridge.client.stream("GET", url, headers=agent, timeout=30) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                kind = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        events.append((kind, json.loads(line[6:])))

        reader = asyncio.create_task(read())
        try:
            await eventually(lambda: _seen(events, "window"))
            assert [e["direction"] for kind, e in events if kind == "bubble"] == ["in"]
            await bridge.customer_says(CUSTOMER, "Second")
            bubble = await eventually(lambda: _seen(events, "bubble", "Second"))
            assert bubble["direction"] == "in"
            await bridge.agent_says(CUSTOMER, "Answer")
            read_tick = await eventually(lambda: _seen(events, "bubble", "Answer", status="read"), within=20)
            statuses = [e["status"] for kind, e in events if kind == "bubble" and e["id"] == read_tick["id"]]
            ranks = [("received", "sent", "delivered", "read").index(s) for s in statuses]
            assert ranks == sorted(ranks)  # each change once, never backwards
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _seen(
    events: list[tuple[str, dict[str, Any]]], kind: str, text: str | None = None, *, status: str | None = None
) -> dict[str, Any] | None:
    for seen_kind, event in events:
        if seen_kind != kind or (text is not None and text not in event.get("html", "")):
            continue
        if status is None or event.get("status") == status:
            return event
    return None


async def test_a_template_header_file_is_checked_before_anything_is_sent(bridge: Bridge) -> None:
    await bridge.customer_says(CUSTOMER, "Any offers?")
    conversation = await _conversation(bridge, CUSTOMER)
    base = f"/widget/api/conversations/{conversation}"
    agent = await login_as(bridge, Role.AGENT)

    async def sale(url: str) -> Any:
        body = {"template": "spring_sale|en_US", "values": {"body.1": "20%"}, "headerMediaUrl": url}
        return await bridge.client.post(base + "/templates", json=body, headers=agent)

    # Refused, each saying why, and nothing goes to Genesys or WhatsApp: a file that is not there, a file
    # of a type an image header does not take (its name says nothing), an address of this machine.
    missing = await sale(f"{bridge.url}/media/tenant/nobody/none.png")
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"]["field"] == "headerMediaUrl"
    assert "could not be downloaded (HTTP 4" in missing.json()["error"]["message"]
    wrong_type = await sale(f"{bridge.url}/health")  # JSON
    assert wrong_type.status_code == 400, wrong_type.text
    assert "a type WhatsApp does not take" in wrong_type.json()["error"]["message"]
    internal = await sale("http://127.0.0.1:9/offer.png")
    assert internal.status_code == 400, internal.text
    assert "only https" in internal.json()["error"]["message"]
    transcript = (await bridge.genesys.get(f"/_sandbox/conversations/{conversation}/transcript")).json()
    assert [m for m in transcript["messages"] if m["direction"] == "outbound"] == []

    # The agent's own upload is fetched from our store and goes out as the template's header image.
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478da63f8cfc0000003"
        "010100c9fe92ef0000000049454e44ae426082"
    )
    uploaded = await bridge.client.post(
        base + "/uploads", files={"file": ("offer.png", png, "image/png")}, headers=agent
    )
    assert uploaded.status_code == 201, uploaded.text
    sent = await sale(uploaded.json()["url"])
    assert sent.status_code == 202, sent.text
    template = await eventually(lambda: _sent(bridge, "template"))
    (header,) = [c for c in template["template"]["components"] if c["type"] == "header"]
    assert header["parameters"][0]["image"]["link"] == uploaded.json()["url"]
