"""The emulated Genesys Cloud around the agent: the agentless messages API, client apps (Interaction
Widgets) installed through `/api/v2/integrations`, conversation transcripts, and an agent desktop page
that embeds the installed widget the way Genesys does (interpolated URL, Client App SDK messages)."""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from xypr.sandbox.genesys.deps import SandboxDep
from xypr.sandbox.genesys.errors import bad_request, not_found
from xypr.sandbox.genesys.integrations import _caller
from xypr.sandbox.genesys.login import SESSION_COOKIE, start_session
from xypr.sandbox.genesys.state import GenesysSandbox
from xypr.sandbox.genesys.webhooks import genesys_time, outbound_message
from xypr.whatsapp.models import customer_id_type

__all__ = ["ClientApp", "control_router", "router"]

router = APIRouter()
control_router = APIRouter(prefix="/_sandbox", tags=["genesys sandbox"])

INTERACTION_WIDGET = "embedded-client-app-interaction-widget"
_CLIENT_APP_TYPES = {INTERACTION_WIDGET, "embedded-client-app", "embedded-client-app-widget"}
# Where the desktop says the widget runs (the SDK accepts a localhost host origin with any known env).
SANDBOX_TARGET_ENV = "prod-usw2"


@dataclass(slots=True)
class ClientApp:
    """A client app integration (`/api/v2/integrations`) of an organisation, with its configuration."""

    id: str
    org_id: str
    type: str
    name: str
    intended_state: str = "DISABLED"
    properties: dict[str, Any] = field(default_factory=dict)
    version: int = 1

    def entity(self) -> dict[str, Any]:
        """The integration as Genesys answers it."""
        return {
            "id": self.id,
            "name": self.name,
            "integrationType": {"id": self.type, "selfUri": f"/api/v2/integrations/types/{self.type}"},
            "intendedState": self.intended_state,
            "reportedState": {"code": "ACTIVE" if self.intended_state == "ENABLED" else "INACTIVE"},
            "selfUri": f"/api/v2/integrations/{self.id}",
        }

    def config(self) -> dict[str, Any]:
        """`/config/current`."""
        return {"name": self.name, "version": self.version, "properties": self.properties, "advanced": {},
                "notes": "", "credentials": {}}  # fmt: skip


def _apps(sandbox: GenesysSandbox) -> dict[str, ClientApp]:
    apps: dict[str, ClientApp] = sandbox.client_apps
    return apps


def _caller_org(request: Request, sandbox: GenesysSandbox) -> str:
    client_id = _caller(request, sandbox)
    org = sandbox.client_org(client_id)
    if not org:
        raise not_found("organization")
    return org


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise bad_request("body", "malformed JSON") from exc
    if not isinstance(body, dict):
        raise bad_request("body", "must be a JSON object")
    return body


# -- client apps ------------------------------------------------------------------------------------------


@router.post("/api/v2/integrations")
async def create_client_app(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """Create an integration of a client app type (client-app-create-integration-*.json); it starts disabled."""
    org = _caller_org(request, sandbox)
    body = await _json(request)
    kind = (body.get("integrationType") or {}).get("id") if isinstance(body.get("integrationType"), dict) else None
    if kind not in _CLIENT_APP_TYPES:
        raise bad_request("integrationType.id", f"must be one of {', '.join(sorted(_CLIENT_APP_TYPES))}")
    app = ClientApp(str(uuid.uuid4()), org, kind, str(body.get("name") or "Client app"))
    _apps(sandbox)[app.id] = app
    return app.entity()


def _app(sandbox: GenesysSandbox, org: str, app_id: str) -> ClientApp:
    app = _apps(sandbox).get(app_id)
    if app is None or app.org_id != org:
        raise not_found(f"Integration {app_id}")
    return app


@router.put("/api/v2/integrations/{app_id}/config/current")
async def configure_client_app(app_id: str, request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """Name and properties (`url`, `sandbox`, `groups`…) of a client app."""
    app = _app(sandbox, _caller_org(request, sandbox), app_id)
    body = await _json(request)
    properties = body.get("properties")
    if not isinstance(properties, dict) or not isinstance(properties.get("url"), str):
        raise bad_request("properties.url", "is required")
    app.name = str(body.get("name") or app.name)
    app.properties = properties
    app.version += 1
    return app.config()


@router.get("/api/v2/integrations/{app_id}/config/current")
async def read_client_app_config(app_id: str, request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """The current configuration of a client app."""
    return _app(sandbox, _caller_org(request, sandbox), app_id).config()


@router.patch("/api/v2/integrations/{app_id}")
async def update_client_app(app_id: str, request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """`intendedState` ENABLED / DISABLED."""
    app = _app(sandbox, _caller_org(request, sandbox), app_id)
    body = await _json(request)
    state = body.get("intendedState")
    if state not in ("ENABLED", "DISABLED"):
        raise bad_request("intendedState", "must be ENABLED or DISABLED")
    app.intended_state = str(state)
    return app.entity()


@router.get("/api/v2/integrations")
async def list_client_apps(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """The organisation's client app integrations."""
    org = _caller_org(request, sandbox)
    entities = [app.entity() for app in _apps(sandbox).values() if app.org_id == org]
    return {"entities": entities, "pageSize": 100, "pageNumber": 1, "total": len(entities)}


@control_router.get("/client-apps")
async def client_apps(sandbox: SandboxDep) -> list[dict[str, Any]]:
    """Every installed client app with its configuration."""
    return [{**app.entity(), "orgId": app.org_id, "properties": app.properties} for app in _apps(sandbox).values()]


# -- agentless messages -----------------------------------------------------------------------------------


@router.post("/api/v2/conversations/messages/agentless")
async def send_agentless(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """A message from an API participant (agentless-outbound-open-request.json) into the customer's
    conversation: recorded in its transcript and posted to the integration's outbound webhook.
    Beside `textBody`, `content` carries normalized content items (e.g. a `Notification` template)."""
    client_id = _caller(request, sandbox)
    body = await _json(request)
    integration = sandbox.integrations.get(str(body.get("fromAddress") or ""))
    if integration is None:
        raise bad_request("fromAddress", "must be the id of an Open Messaging integration")
    if not sandbox.client_may_use(client_id, integration):
        raise not_found(f"Open messaging integration {integration.integration_id}")
    if body.get("toAddressMessengerType") != "open":
        raise bad_request("toAddressMessengerType", "this emulator knows the open messenger type")
    to = body.get("toAddress")
    if not isinstance(to, str) or not to:
        raise bad_request("toAddress", "is required")
    text, content = body.get("textBody"), body.get("content") or []
    if not isinstance(content, list) or (not text and not content):
        raise bad_request("textBody", "textBody or content is required")
    if isinstance(text, str) and len(text) > 2000:
        raise bad_request("textBody", "at most 2000 characters")
    key = (integration.integration_id, to)
    if not body.get("useExistingActiveConversation") and key in sandbox.conversations:
        raise bad_request("useExistingActiveConversation", "the customer has an active conversation")
    conversation_id = sandbox.conversation_for(integration.integration_id, to)
    message = outbound_message(
        integration_id=integration.integration_id,
        nickname=integration.name,
        to_id=to,
        to_id_type=customer_id_type(to),
        message_type="Structured" if content else "Text",
        text=text if isinstance(text, str) else None,
        content=content,
        originating_entity="Bot",
    )
    record = await sandbox.send_outbound(integration, message)
    return {
        "id": record.id,
        "conversationId": conversation_id,
        "fromAddress": integration.integration_id,
        "toAddress": to,
        "messengerType": "open",
        "textBody": text,
        "useExistingActiveConversation": bool(body.get("useExistingActiveConversation")),
        "timestamp": genesys_time(),
    }


# -- transcripts --------------------------------------------------------------------------------------------


def _conversation_key(sandbox: GenesysSandbox, conversation_id: str) -> tuple[str, str] | None:
    return next((key for key, value in sandbox.conversations.items() if value == conversation_id), None)


def transcript(sandbox: GenesysSandbox, conversation_id: str) -> list[dict[str, Any]]:
    """What the conversation shows in Genesys: customer messages and agent / API messages, oldest first."""
    key = _conversation_key(sandbox, conversation_id)
    entries: list[dict[str, Any]] = []
    for received in sandbox.received:
        if received.conversation_id == conversation_id and received.kind in ("message", "structured"):
            body = received.body
            entries.append(
                {"direction": "inbound", "time": received.time, "id": received.id, "text": body.get("text"),
                 "content": body.get("content") or []}
            )  # fmt: skip
    if key is not None:
        for sent in sandbox.sent:
            if sent.integration_id == key[0] and sent.to == key[1] and sent.type in ("Text", "Structured"):
                body = sent.body if isinstance(sent.body, dict) else {}
                entries.append({"direction": "outbound", "time": sent.time, "id": sent.id, "text": body.get("text"),
                                "content": body.get("content") or [],
                                "originatingEntity": body.get("originatingEntity")})  # fmt: skip
    return sorted(entries, key=lambda entry: entry["time"])


@control_router.get("/conversations")
async def conversations(sandbox: SandboxDep) -> list[dict[str, str]]:
    """Open conversations: id, integration and customer."""
    return [
        {"conversationId": cid, "integrationId": key[0], "customerId": key[1]}
        for key, cid in sandbox.conversations.items()
    ]


@control_router.get("/conversations/{conversation_id}/transcript")
async def conversation_transcript(conversation_id: str, sandbox: SandboxDep) -> dict[str, Any]:
    """The conversation's messages as Genesys shows them to the agent."""
    key = _conversation_key(sandbox, conversation_id)
    if key is None:
        raise not_found(f"Conversation {conversation_id}")
    return {"conversationId": conversation_id, "integrationId": key[0], "customerId": key[1],
            "messages": transcript(sandbox, conversation_id)}  # fmt: skip


# -- the agent desktop --------------------------------------------------------------------------------------


def _widget_url(sandbox: GenesysSandbox, org_id: str, conversation_id: str, host_origin: str, lang: str) -> str | None:
    """The org's enabled Interaction Widget URL with Genesys's `{{…}}` placeholders filled in."""
    app = next(
        (a for a in _apps(sandbox).values()
         if a.org_id == org_id and a.type == INTERACTION_WIDGET and a.intended_state == "ENABLED"),
        None,
    )  # fmt: skip
    if app is None:
        return None
    url = str(app.properties.get("url", ""))
    values = {"gcConversationId": conversation_id, "gcHostOrigin": host_origin,
              "gcTargetEnv": SANDBOX_TARGET_ENV, "gcLangTag": lang}  # fmt: skip
    for name, value in values.items():
        url = url.replace("{{" + name + "}}", quote(value, safe=""))
    return url


_NO_CONVERSATIONS = "<li>No conversations yet: write as the customer first.</li>"


def _page(title: str, body: str, *, config: dict[str, Any] | None = None) -> HTMLResponse:
    head = (
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{html.escape(title)}</title>'
        '<link rel="stylesheet" href="/static/desktop/desktop.css">'
    )
    if config is not None:
        head += (
            f'<script type="application/json" id="desktop-config">{_script_json(config)}</script>'
            '<script src="/static/desktop/desktop.js" defer></script>'
        )
    document = f'<!doctype html><html lang="en"><head>{head}</head><body>{body}</body></html>'
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self' http: https:; connect-src 'self'; base-uri 'none'; form-action 'self'"
    )
    return HTMLResponse(document, headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"})


@router.get("/desktop", response_class=HTMLResponse, include_in_schema=False)
async def desktop(
    request: Request,
    sandbox: SandboxDep,
    conversationId: str = "",
    lang: str = "en-us",
) -> Response:
    """The agent desktop: the conversation on one side, the org's Interaction Widget on the other."""
    agent = sandbox.accounts.session_user(request.cookies.get(SESSION_COOKIE, ""))
    here = str(request.url.path)
    if agent is None:
        buttons = "".join(
            f"<button type='submit' name='login' value='{html.escape(u.id, quote=True)}'>"
            f"{html.escape(u.name)} · {html.escape(', '.join(u.roles) or 'no roles')} · org {html.escape(u.org_id)}"
            "</button>"
            for u in sandbox.accounts.users.values()
        )
        back = html.escape(str(request.url.query), quote=True)
        body = (f"<header><h1>Genesys Cloud sandbox: agent desktop</h1></header><form class='signin' method='post' "
                f"action='{html.escape(here)}/sign-in'><input type='hidden' name='next' value='{back}'>"
                f"<p>Sign in as:</p>{buttons or '<p>No sandbox users.</p>'}</form>")  # fmt: skip
        return _page("Agent desktop: sign in", body)
    if not conversationId:
        items = "".join(
            f"<li><a href='{html.escape(here)}?{urlencode({'conversationId': cid})}'>{html.escape(key[1])}</a>"
            f" <small>({html.escape(cid)})</small></li>"
            for key, cid in sandbox.conversations.items()
            if (i := sandbox.integrations.get(key[0])) is not None and i.org_id == agent.org_id
        )
        body = (f"<header><h1>Agent desktop · {html.escape(agent.name)}</h1></header>"
                f"<ul class='list'>{items or _NO_CONVERSATIONS}</ul>")  # fmt: skip
        return _page("Agent desktop", body)
    key = _conversation_key(sandbox, conversationId)
    integration = sandbox.integrations.get(key[0]) if key else None
    if key is None or integration is None or integration.org_id != agent.org_id:
        missing = html.escape(conversationId)
        body = f"<header><h1>Agent desktop</h1></header><p class='list'>Conversation {missing} not found.</p>"
        return _page("Agent desktop", body)
    origin = f"{request.url.scheme}://{request.url.netloc}"
    widget = _widget_url(sandbox, agent.org_id, conversationId, origin, lang)
    frame = (
        f"<iframe id='widget-frame' title='WhatsApp widget' src='{html.escape(widget, quote=True)}' "
        "sandbox='allow-scripts allow-same-origin allow-forms allow-popups allow-downloads'></iframe>"
        if widget else "<p class='list'>No Interaction Widget is installed and enabled in this organisation.</p>"
    )  # fmt: skip
    body = f"""<header><h1>Agent desktop · {html.escape(agent.name)}</h1>
<a href="{html.escape(here)}">All conversations</a></header>
<div class="desk">
 <section class="pane" aria-labelledby="conversation-heading">
  <h2 id="conversation-heading">Conversation with {html.escape(key[1])}</h2>
  <ol id="transcript" aria-live="polite"></ol>
  <form id="reply-form"><label for="desktop-composer" hidden>Reply</label>
   <textarea id="desktop-composer" rows="2" aria-label="Reply"></textarea>
   <button type="submit">Send reply</button></form>
 </section>
 <section class="pane" aria-labelledby="widget-heading">
  <h2 id="widget-heading">WhatsApp <span id="attention" class="badge" hidden></span>
   <button type="button" id="stop-widget">Close widget</button></h2>
  {frame}
 </section>
</div>
<div id="toasts" aria-live="polite"></div>"""
    settings = {"conversationId": conversationId, "integrationId": key[0], "customer": key[1],
                "base": here.rsplit("/desktop", 1)[0], "widgetOrigin": origin}  # fmt: skip
    return _page("Agent desktop", body, config=settings)


def _script_json(value: Any) -> str:
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.post("/desktop/sign-in", include_in_schema=False)
async def desktop_sign_in(request: Request, sandbox: SandboxDep) -> Response:
    """The agent signs in to the desktop (and so to Genesys: apps signing in later get no prompt)."""
    form = {key: values[0] for key, values in parse_qs((await request.body()).decode(errors="replace")).items()}
    user = sandbox.accounts.user_by_login(form.get("login", ""))
    if user is None:
        raise bad_request("login", "unknown user")
    back = form.get("next", "")
    target = str(request.url.path).rsplit("/sign-in", 1)[0] + (f"?{back}" if back else "")
    response = RedirectResponse(target, status_code=303)
    start_session(request, response, sandbox, user)
    return response
