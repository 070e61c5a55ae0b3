"""The emulated Genesys Cloud around the agent: the agentless messages API, client apps (Interaction
Widgets) installed through `/api/v2/integrations`, conversation transcripts, and an agent desktop page
that embeds the installed widget the way Genesys does (interpolated URL, Client App SDK messages)."""

from __future__ import annotations

import html
import json
import secrets
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
        to_id_type="Opaque" if "." in to else "Phone",
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
            entries.append({"direction": "inbound", "time": received.time, "id": received.id,
                            "text": received.body.get("text"), "content": received.body.get("content") or []})  # fmt: skip
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


def _page(title: str, body: str, *, nonce: str, script: str = "") -> HTMLResponse:
    document = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><title>{html.escape(title)}</title>
<style nonce="{nonce}">{_STYLE}</style></head><body>{body}
{f'<script nonce="{nonce}">{script}</script>' if script else ""}</body></html>"""
    policy = (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "frame-src 'self' http: https:; connect-src 'self'; base-uri 'none'; form-action 'self'"
    )
    return HTMLResponse(document, headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"})


_STYLE = """
:root{--bg:#f4f5f7;--panel:#fff;--text:#1d2330;--muted:#5b6475;--accent:#ff4f1f;--border:#d7dbe2;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#151922;--panel:#1f2430;--text:#e8eaef;--muted:#9aa3b5;--border:#2f3645}}
body{margin:0;font:14px/1.4 system-ui,sans-serif;background:var(--bg);color:var(--text)}
header{display:flex;align-items:center;gap:1rem;padding:.5rem 1rem;background:#2d3440;color:#fff}
header h1{font-size:1rem;margin:0}header a{color:#fff}
.desk{display:grid;grid-template-columns:minmax(0,1fr) 380px;gap:1rem;padding:1rem;height:calc(100vh - 3.5rem)}
.pane{background:var(--panel);border:1px solid var(--border);border-radius:8px;display:flex;flex-direction:column;min-height:0}
.pane h2{font-size:.95rem;margin:0;padding:.6rem .8rem;border-bottom:1px solid var(--border);display:flex;gap:.5rem;align-items:center}
#transcript{list-style:none;margin:0;padding:.8rem;overflow:auto;flex:1;display:flex;flex-direction:column;gap:.4rem}
#transcript li{max-width:75%;padding:.4rem .6rem;border-radius:8px;background:var(--bg);white-space:pre-wrap}
#transcript li.outbound{align-self:flex-end;background:#ffe3d9;color:#1d2330}
#transcript li small{display:block;color:var(--muted);font-size:.7rem}
form{display:flex;gap:.5rem;padding:.6rem;border-top:1px solid var(--border)}
textarea{flex:1;font:inherit;padding:.4rem;border:1px solid var(--border);border-radius:6px;background:var(--bg);color:var(--text)}
button{font:inherit;border:0;border-radius:6px;padding:.4rem .9rem;background:var(--accent);color:#fff;cursor:pointer}
iframe{border:0;flex:1;width:100%;min-height:0}
.badge{background:var(--accent);color:#fff;border-radius:999px;padding:0 .45rem;font-size:.75rem}
.badge[hidden]{display:none}
#toasts{position:fixed;right:1rem;bottom:1rem;display:flex;flex-direction:column;gap:.4rem;max-width:22rem}
#toasts div{background:#2d3440;color:#fff;padding:.5rem .7rem;border-radius:6px;border-left:4px solid var(--accent)}
ul.list{padding:1rem 2rem}form.signin{display:block;padding:1rem}form.signin button{display:block;margin:.4rem 0}
"""


@router.get("/desktop", response_class=HTMLResponse, include_in_schema=False)
async def desktop(
    request: Request,
    sandbox: SandboxDep,
    conversationId: str = "",
    lang: str = "en-us",
) -> Response:
    """The agent desktop: the conversation on one side, the org's Interaction Widget on the other."""
    nonce = secrets.token_urlsafe(16)
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
        return _page("Agent desktop: sign in", body, nonce=nonce)
    if not conversationId:
        items = "".join(
            f"<li><a href='{html.escape(here)}?{urlencode({'conversationId': cid})}'>{html.escape(key[1])}</a>"
            f" <small>({html.escape(cid)})</small></li>"
            for key, cid in sandbox.conversations.items()
            if (i := sandbox.integrations.get(key[0])) is not None and i.org_id == agent.org_id
        )
        body = (f"<header><h1>Agent desktop · {html.escape(agent.name)}</h1></header>"
                f"<ul class='list'>{items or '<li>No conversations yet: write as the customer first.</li>'}</ul>")  # fmt: skip
        return _page("Agent desktop", body, nonce=nonce)
    key = _conversation_key(sandbox, conversationId)
    integration = sandbox.integrations.get(key[0]) if key else None
    if key is None or integration is None or integration.org_id != agent.org_id:
        body = f"<header><h1>Agent desktop</h1></header><p class='list'>Conversation {html.escape(conversationId)} not found.</p>"
        return _page("Agent desktop", body, nonce=nonce)
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
   <textarea id="desktop-composer" rows="2" aria-label="Reply"></textarea><button type="submit">Send reply</button></form>
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
    return _page(
        "Agent desktop", body, nonce=nonce, script=_DESKTOP_SCRIPT.replace("__CONFIG__", _script_json(settings))
    )


def _script_json(value: Any) -> str:
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The host side of the Client App SDK's postMessage protocol (`protocol: purecloud-client-apps`):
# the app posts `{action, …}` to its parent; the parent posts `{purecloudEventType, hook}` back.
_DESKTOP_SCRIPT = """
const cfg = __CONFIG__;
window.sdkMessages = [];
const frame = document.getElementById('widget-frame');
const transcript = document.getElementById('transcript');
const composer = document.getElementById('desktop-composer');
function show(entry) {
  const li = document.createElement('li');
  li.className = entry.direction;
  const parts = [entry.text || ''];
  (entry.content || []).forEach(function (c) {
    if (c.contentType === 'Attachment' && c.attachment) parts.push('[' + (c.attachment.mediaType || 'file') + '] ' + (c.attachment.filename || ''));
    if (c.contentType === 'QuickReply' && c.quickReply) parts.push('( ' + c.quickReply.text + ' )');
  });
  li.textContent = parts.filter(Boolean).join('\\n');
  const small = document.createElement('small');
  small.textContent = entry.time + (entry.originatingEntity === 'Bot' ? ' · API' : '');
  li.appendChild(small);
  return li;
}
let shown = 0;
async function refresh() {
  const answer = await fetch(cfg.base + '/_sandbox/conversations/' + encodeURIComponent(cfg.conversationId) + '/transcript');
  if (!answer.ok) return;
  const body = await answer.json();
  if (body.messages.length !== shown) {
    transcript.replaceChildren.apply(transcript, body.messages.map(show));
    shown = body.messages.length;
    transcript.scrollTop = transcript.scrollHeight;
  }
}
refresh(); setInterval(refresh, 1000);
document.getElementById('reply-form').addEventListener('submit', async function (event) {
  event.preventDefault();
  const text = composer.value.trim();
  if (!text) return;
  await fetch(cfg.base + '/_sandbox/integrations/' + encodeURIComponent(cfg.integrationId) + '/agent/messages', {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({to: cfg.customer, text: text})});
  composer.value = '';
  refresh();
});
function toast(title, message) {
  const box = document.createElement('div');
  const strong = document.createElement('strong'); strong.textContent = title;
  box.appendChild(strong); box.appendChild(document.createTextNode(' ' + (message || '')));
  document.getElementById('toasts').appendChild(box);
  setTimeout(function () { box.remove(); }, 7000);
}
window.addEventListener('message', function (event) {
  if (!frame || event.source !== frame.contentWindow || event.origin !== cfg.widgetOrigin) return;
  const data = event.data;
  if (!data || data.protocol !== 'purecloud-client-apps') return;
  window.sdkMessages.push(data);
  if (data.action === 'showToast') toast(data.title, data.message);
  else if (data.action === 'setAttentionCount') {
    const badge = document.getElementById('attention');
    badge.textContent = String(data.count); badge.hidden = !data.count;
  } else if (data.action === 'proposeInteractionMessage') {
    composer.value = data.message; composer.focus();
  }
});
function lifecycle(hook) {
  if (frame) frame.contentWindow.postMessage({purecloudEventType: 'appLifecycleHook', hook: hook}, cfg.widgetOrigin);
}
if (frame) frame.addEventListener('load', function () { lifecycle('bootstrap'); });
document.getElementById('stop-widget').addEventListener('click', function () { lifecycle('stop'); });
"""


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
