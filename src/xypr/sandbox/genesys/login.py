"""The emulated Genesys user login: `/oauth/authorize` (a sign-in page), the code grant with PKCE (S256),
`/api/v2/users/me` and `/api/v2/organizations/me`, and the `/_sandbox` routes that create clients and users."""

from __future__ import annotations

import html
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from xypr.sandbox.genesys.accounts import LoginClient, SandboxUser
from xypr.sandbox.genesys.deps import SandboxDep
from xypr.sandbox.genesys.errors import GenesysError, authentication_required, bad_credentials
from xypr.sandbox.genesys.state import GenesysSandbox

__all__ = ["SESSION_COOKIE", "code_grant", "control_router", "router", "start_session"]

router = APIRouter()
control_router = APIRouter(prefix="/_sandbox", tags=["genesys sandbox"])

_OAUTH_PARAMS = (
    "response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "prompt",
)  # fmt: skip
# Genesys keeps a browser session on its login host: a second sign-in (an embedded app's) needs no prompt.
SESSION_COOKIE = "gc_sandbox_session"


class LoginClientRegistration(BaseModel):
    """A code-grant OAuth client; without `client_secret` it is public and must use PKCE."""

    client_id: str = Field(min_length=1)
    redirect_uris: list[str] = Field(min_length=1)
    name: str = "Code grant client"
    client_secret: str | None = None


class UserRegistration(BaseModel):
    """A Genesys user of an organisation with role names (e.g. "Master Admin") and permissions."""

    org_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str = Field(min_length=3)
    roles: list[str] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)
    id: str | None = None
    org_name: str | None = None


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}"
        "button{display:block;width:100%;margin:.4rem 0;padding:.6rem;text-align:left}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status)


def _authorize_problem(sandbox: GenesysSandbox, params: dict[str, str]) -> str | None:
    """Why an authorization request cannot even redirect back (shown on the page, as Genesys does)."""
    client = sandbox.accounts.clients.get(params.get("client_id", ""))
    if client is None:
        return "client_id is not a registered OAuth client"
    if params.get("redirect_uri") not in client.redirect_uris:
        return "redirect_uri is not registered for this client"
    return None


def _redirect_error(params: dict[str, str], error: str, description: str) -> RedirectResponse:
    query = {"error": error, "error_description": description}
    if params.get("state"):
        query["state"] = params["state"]
    # The implicit grant answers in the fragment, errors included (RFC 6749 §4.2.2.1).
    separator = "#" if params.get("response_type") == "token" else "?"
    return RedirectResponse(f"{params['redirect_uri']}{separator}{urlencode(query)}", status_code=302)


def _flow_problem(sandbox: GenesysSandbox, params: dict[str, str]) -> tuple[str, str] | None:
    """An error to send back to the client's redirect URI (RFC 6749 §4.1.2.1)."""
    client = sandbox.accounts.clients[params["client_id"]]
    if params.get("response_type") == "token":
        return None  # the implicit grant: no code, no PKCE (Genesys offers it to browser apps)
    if params.get("response_type") != "code":
        return "unsupported_response_type", "response_type must be code or token"
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if challenge and method != "S256":
        return "invalid_request", "code_challenge_method must be S256"
    if client.client_secret is None and not challenge:
        return "invalid_request", "a public client must send a PKCE code_challenge"
    return None


@router.get("/oauth/authorize", response_class=HTMLResponse, include_in_schema=False)
async def authorize_page(request: Request, sandbox: SandboxDep) -> Response:
    """The sign-in page: pick a sandbox user of any organisation (no passwords in the sandbox)."""
    params = {key: request.query_params[key] for key in _OAUTH_PARAMS if key in request.query_params}
    problem = _authorize_problem(sandbox, params)
    if problem:
        return _page("Genesys Cloud sandbox: sign-in error", f"<p>{html.escape(problem)}</p>", status=400)
    flow = _flow_problem(sandbox, params)
    if flow:
        return _redirect_error(params, *flow)
    signed_in = sandbox.accounts.session_user(request.cookies.get(SESSION_COOKIE, ""))
    if signed_in is not None and params.get("prompt") != "login":
        return _grant(sandbox, params, signed_in)
    if params.get("prompt") == "none":
        return _redirect_error(params, "login_required", "the user is not signed in")
    hidden = "".join(
        f"<input type='hidden' name='{key}' value='{html.escape(value, quote=True)}'>" for key, value in params.items()
    )
    buttons = "".join(
        f"<form method='post'>{hidden}<input type='hidden' name='login' value='{html.escape(user.id, quote=True)}'>"
        f"<button type='submit'>{html.escape(user.name)} &lt;{html.escape(user.email)}&gt; · "
        f"{html.escape(', '.join(user.roles) or 'no roles')} · org {html.escape(user.org_id)}</button></form>"
        for user in sandbox.accounts.users.values()
    )
    client = sandbox.accounts.clients[params["client_id"]]
    intro = f"<p>{html.escape(client.name)} asks you to sign in. Choose a sandbox user:</p>"
    return _page("Genesys Cloud sandbox: sign in", intro + (buttons or "<p>No sandbox users yet.</p>"))


@router.post("/oauth/authorize", include_in_schema=False)
async def authorize_submit(request: Request, sandbox: SandboxDep) -> Response:
    """The user signed in: redirect to the client with `code` and `state`."""
    form = {key: values[0] for key, values in parse_qs((await request.body()).decode(errors="replace")).items()}
    params = {key: form[key] for key in _OAUTH_PARAMS if key in form}
    problem = _authorize_problem(sandbox, params)
    if problem:
        return _page("Genesys Cloud sandbox: sign-in error", f"<p>{html.escape(problem)}</p>", status=400)
    flow = _flow_problem(sandbox, params)
    if flow:
        return _redirect_error(params, *flow)
    user = sandbox.accounts.user_by_login(form.get("login", ""))
    if user is None:
        return _page("Genesys Cloud sandbox: sign in", "<p>Unknown user.</p>", status=401)
    response = _grant(sandbox, params, user)
    start_session(request, response, sandbox, user)
    return response


def start_session(request: Request, response: Response, sandbox: GenesysSandbox, user: SandboxUser) -> None:
    """Remember the signed-in user in this browser (a cookie on the emulator's path)."""
    path = request.scope.get("root_path") or "/"
    response.set_cookie(
        SESSION_COOKIE, sandbox.accounts.start_session(user.id), path=path, httponly=True, samesite="lax"
    )


def _grant(sandbox: GenesysSandbox, params: dict[str, str], user: SandboxUser) -> RedirectResponse:
    """Back to the client: a code (`?code=`), or for the implicit grant the token in the fragment."""
    if params.get("response_type") == "token":
        access = sandbox.accounts.issue_token(user.id, params["client_id"], sandbox.token_ttl)
        fragment = {"access_token": access.token, "token_type": "bearer", "expires_in": str(sandbox.token_ttl)}
        if params.get("state"):
            fragment["state"] = params["state"]
        return RedirectResponse(f"{params['redirect_uri']}#{urlencode(fragment)}", status_code=302)
    code = sandbox.accounts.issue_code(
        params["client_id"], params["redirect_uri"], user.id, params.get("code_challenge")
    )
    query = {"code": code}
    if params.get("state"):
        query["state"] = params["state"]
    return RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status_code=302)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "description": description, "error_description": description}, status_code=status
    )


def code_grant(form: dict[str, list[str]], basic: tuple[str, str] | None, sandbox: GenesysSandbox) -> JSONResponse:
    """`grant_type=authorization_code`: a public client proves the code with its PKCE verifier."""

    def one(name: str) -> str:
        return form.get(name, [""])[0]

    client_id = basic[0] if basic else one("client_id")
    client = sandbox.accounts.clients.get(client_id)
    if client is None:
        return _oauth_error(401, "invalid_client", "client not found")
    if client.client_secret is not None and (basic is None or basic[1] != client.client_secret):
        return _oauth_error(401, "invalid_client", "client authentication failed")
    if not one("code") or not one("redirect_uri"):
        return _oauth_error(400, "invalid_request", "code and redirect_uri are required")
    user, why = sandbox.accounts.redeem_code(
        one("code"), client_id=client_id, redirect_uri=one("redirect_uri"), verifier=one("code_verifier") or None
    )
    if user is None:
        return _oauth_error(400, "invalid_grant", why)
    access = sandbox.accounts.issue_token(user.id, client_id, sandbox.token_ttl)
    return JSONResponse({"access_token": access.token, "token_type": "bearer", "expires_in": sandbox.token_ttl})


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise authentication_required()
    return token.strip()


def _organization(sandbox: GenesysSandbox, org_id: str) -> dict[str, Any]:
    name = sandbox.accounts.org_names.get(org_id) or next(
        (i.name for i in sandbox.integrations.values() if i.org_id == org_id), f"Organisation {org_id}"
    )
    return {
        "id": org_id,
        "name": name,
        "defaultLanguage": "en-us",
        "defaultCountryCode": "US",
        "thirdPartyOrgName": org_id,
        "domain": org_id,
        "version": 1,
        "state": "active",
        "productPlatform": "PureCloud",
        "selfUri": f"/api/v2/organizations/{org_id}",
    }


@router.get("/api/v2/users/me", include_in_schema=False)
async def users_me(request: Request, sandbox: SandboxDep, expand: str = "") -> JSONResponse:
    """The signed-in user; `expand=authorization,organization` adds roles, permissions and the organisation."""
    token = _bearer(request)
    user = sandbox.accounts.token_user(token)
    if user is None:
        if sandbox.token_client(token) is not None:
            raise GenesysError(
                400,
                "bad.request",
                "This request requires a user context. Client credentials cannot be used for requests to this "
                "resource.",
            )
        raise bad_credentials()
    expansions = {part.strip() for part in expand.split(",") if part.strip()}
    body: dict[str, Any] = {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "username": user.email,
        "state": "active",
        "version": 1,
        "division": {"id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"division:{user.org_id}")), "name": "Home"},
        "selfUri": f"/api/v2/users/{user.id}",
    }
    if "authorization" in expansions:
        body["authorization"] = {
            "roles": [{"id": sandbox.accounts.role_id(name), "name": name} for name in user.roles],
            "unusedRoles": [],
            "permissions": list(user.permissions),
            "permissionPolicies": [],
        }
    if "organization" in expansions:
        body["organization"] = _organization(sandbox, user.org_id)
    return JSONResponse(body)


@router.get("/api/v2/organizations/me", include_in_schema=False)
async def organizations_me(request: Request, sandbox: SandboxDep) -> JSONResponse:
    """The organisation of the token's user (or of the client, for a client-credentials token)."""
    token = _bearer(request)
    user = sandbox.accounts.token_user(token)
    if user is not None:
        return JSONResponse(_organization(sandbox, user.org_id))
    client_id = sandbox.token_client(token)
    integration = next((i for i in sandbox.integrations.values() if i.client_id == client_id), None)
    if integration is None:
        raise bad_credentials()
    return JSONResponse(_organization(sandbox, integration.org_id))


@control_router.post("/oauth/clients")
async def register_login_client(registration: LoginClientRegistration, sandbox: SandboxDep) -> dict[str, Any]:
    """Register (upsert) a code-grant client and its redirect URIs."""
    client = sandbox.accounts.register_client(LoginClient(**registration.model_dump()))
    return {
        "client_id": client.client_id,
        "redirect_uris": client.redirect_uris,
        "public": client.client_secret is None,
    }


@control_router.post("/users")
async def add_user(registration: UserRegistration, sandbox: SandboxDep) -> dict[str, Any]:
    """Create (or replace) a user of an organisation, with roles and permissions."""
    fields = registration.model_dump(exclude={"org_name"})
    fields["id"] = registration.id or str(uuid.uuid4())
    user = sandbox.accounts.add_user(SandboxUser(**fields), org_name=registration.org_name)
    return {"id": user.id, "org_id": user.org_id, "name": user.name, "email": user.email, "roles": user.roles}


@control_router.get("/users")
async def list_users(sandbox: SandboxDep, org_id: str | None = None) -> list[dict[str, Any]]:
    """Sandbox users (of one organisation, or all)."""
    return [
        {
            "id": u.id,
            "org_id": u.org_id,
            "name": u.name,
            "email": u.email,
            "roles": u.roles,
            "permissions": u.permissions,
        }
        for u in sandbox.accounts.users.values()
        if org_id is None or u.org_id == org_id
    ]


@control_router.delete("/users/{user_id}")
async def remove_user(user_id: str, sandbox: SandboxDep) -> dict[str, bool]:
    """Delete a user; their tokens stop working."""
    if sandbox.accounts.users.pop(user_id, None) is None:
        raise HTTPException(404, f"user {user_id} does not exist")
    return {"deleted": True}
