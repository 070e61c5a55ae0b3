"""The auth service: admin login, Genesys login (code + PKCE), tokens, refresh, validate, info, logout."""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from xypr.auth.cookies import (
    CSRF_COOKIE,
    CSRF_HEADER,
    LOGIN_STATE_COOKIE,
    REFRESH_COOKIE,
    clear_session_cookies,
    csrf_matches,
    new_csrf_token,
    set_session_cookies,
)
from xypr.auth.genesys import GenesysLogin, authorize_url, new_pkce
from xypr.auth.models import RefreshToken, User
from xypr.auth.principal import CurrentPrincipal, Role
from xypr.auth.roles import role_for, tenant_role_mapping
from xypr.auth.schemas import (
    GRANT_PASSWORD,
    GRANT_REFRESH,
    GRANT_TOKEN_EXCHANGE,
    TOKEN_TYPE_ACCESS,
    InfoView,
    LoginRequest,
    LogoutView,
    PrincipalView,
    RefreshRequest,
    SessionView,
    TenantRef,
    TokenRequest,
    TokenResponse,
)
from xypr.auth.service import (
    SessionTokens,
    authenticate_admin,
    refresh_session,
    revoke_session,
    start_session,
    tenant_by_genesys_org,
    upsert_genesys_user,
)
from xypr.auth.tokens import refresh_token_hash
from xypr.core.errors import BadRequest, Forbidden, ServiceUnavailable, Unauthorized, XyprError
from xypr.core.logging import get_logger
from xypr.genesys.client import api_base, login_base
from xypr.runtime import Runtime
from xypr.services.deps import RuntimeDep
from xypr.services.openapi import error_responses, model_schema
from xypr.tenants.models import Tenant
from xypr.tenants.schemas import GENESYS_REGIONS

__all__ = ["router"]

log = get_logger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])

# Password guesses allowed per account in a sliding window (on top of the per-IP limit of the gateway).
PASSWORD_ATTEMPTS = 10
PASSWORD_WINDOW_SECONDS = 300.0
LOGIN_STATE_TTL_SECONDS = 600
CALLBACK_PATH = "/auth/genesys/callback"


class TooManyAttempts(XyprError):
    """429: too many password attempts for one account; `retry_after` seconds until the next one counts."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many login attempts for this account; retry in {retry_after} s")
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        """The 429 answer with its `Retry-After`."""
        return JSONResponse(self.to_body(), status_code=429, headers={"Retry-After": str(self.retry_after)})


def _form_or_json_body(schema: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """OpenAPI: the same fields accepted as a form or as JSON."""
    ref = model_schema(schema)
    return {
        "requestBody": {
            "required": required,
            "content": {"application/x-www-form-urlencoded": {"schema": ref}, "application/json": {"schema": ref}},
        }
    }


async def _fields(request: Request) -> dict[str, Any]:
    """The request body as fields, from a form or a JSON object (400 otherwise)."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        # RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
        return {key: values[0] for key, values in parse_qs(raw.decode(errors="replace")).items() if values[0]}
    if not raw:
        return {}
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest("body must be a JSON object or a form")
    return document


def _parse(schema: type[Any], fields: dict[str, Any]) -> Any:
    try:
        return schema.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        message = "is required" if first["type"] == "missing" else first["msg"]
        raise BadRequest(f"{where}: {message}", field=where) from exc


def _token_response(tokens: SessionTokens) -> TokenResponse:
    now = int(time.time())
    return TokenResponse(
        access_token=tokens.access_token,
        expires_in=max(0, tokens.access_expires_at - now),
        refresh_token=tokens.refresh_token,
        refresh_expires_in=max(0, tokens.refresh_expires_at - now),
        role=tokens.principal.role,
        tenant_id=tokens.principal.tenant_id,
    )


def _session_response(runtime: Runtime, tokens: SessionTokens, response: Response | None = None) -> Response:
    csrf = new_csrf_token()
    view = SessionView(
        user=PrincipalView.of(tokens.principal),
        csrf_token=csrf,
        expires_at=datetime.fromtimestamp(tokens.access_expires_at, UTC),
    )
    response = response or JSONResponse(view.model_dump(mode="json"))
    set_session_cookies(
        response, runtime.settings, access_token=tokens.access_token, refresh_token=tokens.refresh_token,
        csrf_token=csrf,
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


async def _admin_login(runtime: Runtime, email: str, password: str) -> SessionTokens:
    attempts = await runtime.cache.hit(
        f"auth:password-attempts:{email.strip().lower()}", limit=PASSWORD_ATTEMPTS, window=PASSWORD_WINDOW_SECONDS
    )
    if not attempts.allowed:
        raise TooManyAttempts(max(1, math.ceil(attempts.retry_after)))
    user = await authenticate_admin(runtime.database, email=email, password=password)
    log.info("auth.login", method="password", user_id=user.id, role=user.role)
    return await _start(runtime, user)


async def _start(runtime: Runtime, user: User) -> SessionTokens:
    settings = runtime.settings
    return await start_session(
        runtime.database, runtime.box.derive("jwt"), user,
        access_ttl=settings.access_token_ttl_seconds, refresh_ttl=settings.refresh_token_ttl_seconds,
    )  # fmt: skip


async def _rotate(runtime: Runtime, refresh: str) -> SessionTokens:
    settings = runtime.settings
    return await refresh_session(
        runtime.database, runtime.cache, runtime.box.derive("jwt"), refresh,
        access_ttl=settings.access_token_ttl_seconds, refresh_ttl=settings.refresh_token_ttl_seconds,
    )  # fmt: skip


def _genesys_hosts(runtime: Runtime, region: str | None) -> tuple[str, str]:
    """The login and API hosts of a Genesys region (the configured overrides win, e.g. the sandbox)."""
    settings = runtime.settings
    if region:
        region = region.strip().lower()
        if region not in GENESYS_REGIONS:
            raise BadRequest(f"region: unknown Genesys Cloud domain {region!r}", field="region")
    elif not (settings.genesys_login_url and settings.genesys_api_url):
        raise BadRequest("region: required (your Genesys Cloud domain, e.g. mypurecloud.ie)", field="region")
    return login_base(region or "", settings.genesys_login_url), api_base(region or "", settings.genesys_api_url)


async def _genesys_session(runtime: Runtime, api: str, genesys_token: str) -> SessionTokens:
    """users/me → tenant by organisation → role by the tenant's mapping → our session."""
    person = await GenesysLogin(runtime.http).current_user(api, genesys_token)
    tenant = await tenant_by_genesys_org(runtime.database, person.organization.id)
    if tenant is None:
        log.warning("auth.unknown_organization", genesys_org_id=person.organization.id)
        raise Forbidden(
            f"your Genesys Cloud organisation ({person.organization.id}) is not connected to Xypr; "
            "ask your administrator to onboard it"
        )
    mapping = tenant_role_mapping(tenant.settings or {})
    names = [role.name for role in person.authorization.roles]
    if mapping is None:
        # A broken mapping must neither lock everyone out nor grant more than least privilege.
        log.error("auth.invalid_role_mapping", tenant_id=tenant.id)
        role: Role | None = Role.AGENT
    else:
        role = role_for(mapping, names, person.authorization.permissions)
    if role is None:
        raise Forbidden("your Genesys roles give you no access to Xypr in this organisation")
    user = await upsert_genesys_user(runtime.database, tenant_id=tenant.id, person=person, role=role)
    log.info("auth.login", method="genesys", user_id=user.id, role=user.role, tenant_id=tenant.id)
    return await _start(runtime, user)


def _require_csrf(request: Request) -> None:
    if not csrf_matches(request.cookies.get(CSRF_COOKIE), request.headers.get(CSRF_HEADER)):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header (it must repeat the {CSRF_COOKIE} cookie)")


@router.post(
    "/login",
    summary="Log in a Xypr administrator (browser session)",
    response_model=SessionView,
    openapi_extra=_form_or_json_body(LoginRequest),
    responses=error_responses(400, 401, 429),
)
async def login(request: Request, runtime: RuntimeDep) -> Response:
    """Email + password → a session in HttpOnly cookies, and the CSRF token to echo on unsafe requests."""
    credentials: LoginRequest = _parse(LoginRequest, await _fields(request))
    try:
        tokens = await _admin_login(runtime, credentials.email, credentials.password)
    except TooManyAttempts as exc:
        return exc.response()
    return _session_response(runtime, tokens)


@router.post(
    "/token",
    summary="Token endpoint (OAuth 2 style) for API clients",
    response_model=TokenResponse,
    openapi_extra=_form_or_json_body(TokenRequest),
    responses=error_responses(400, 401, 403, 429, 503),
)
async def token(request: Request, runtime: RuntimeDep) -> Response:
    """`password` (Xypr admins), `refresh_token` (rotation), or token exchange of a Genesys user token."""
    grant: TokenRequest = _parse(TokenRequest, await _fields(request))
    if grant.grant_type == GRANT_PASSWORD:
        if not grant.username or grant.password is None:
            raise BadRequest("username and password are required for the password grant", field="username")
        try:
            tokens = await _admin_login(runtime, grant.username, grant.password)
        except TooManyAttempts as exc:
            return exc.response()
    elif grant.grant_type == GRANT_REFRESH:
        if not grant.refresh_token:
            raise BadRequest("refresh_token: is required", field="refresh_token")
        tokens = await _rotate(runtime, grant.refresh_token)
    else:
        assert grant.grant_type == GRANT_TOKEN_EXCHANGE
        if not grant.subject_token:
            raise BadRequest("subject_token: is required (a Genesys Cloud user access token)", field="subject_token")
        if grant.subject_token_type not in (None, TOKEN_TYPE_ACCESS):
            raise BadRequest(f"subject_token_type: only {TOKEN_TYPE_ACCESS}", field="subject_token_type")
        _, api = _genesys_hosts(runtime, grant.region)
        tokens = await _genesys_session(runtime, api, grant.subject_token)
    return JSONResponse(_token_response(tokens).model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.post(
    "/refresh",
    summary="Renew the session (refresh cookie) or the tokens (JSON refresh_token)",
    response_model=TokenResponse | SessionView,
    responses={
        200: {"description": "a TokenResponse (for a `refresh_token` in the body) or a SessionView (refresh cookie)"},
        **error_responses(400, 401, 403, 503),
    },
    openapi_extra=_form_or_json_body(RefreshRequest, required=False),
)
async def refresh(request: Request, runtime: RuntimeDep) -> Response:
    """Rotates the refresh token; using a spent one revokes the whole session."""
    fields = await _fields(request)
    if fields.get("refresh_token"):
        body: RefreshRequest = _parse(RefreshRequest, fields)
        tokens = await _rotate(runtime, body.refresh_token)
        return JSONResponse(_token_response(tokens).model_dump(mode="json"), headers={"Cache-Control": "no-store"})
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        raise Unauthorized("no refresh token: send the xypr_refresh cookie or a refresh_token")
    _require_csrf(request)
    return _session_response(runtime, await _rotate(runtime, cookie))


@router.get(
    "/validate",
    summary="Is this token valid? (for proxies and other services)",
    response_model=PrincipalView,
    responses={
        200: {
            "headers": {
                name: {"description": what, "schema": {"type": "string"}}
                for name, what in (("X-Xypr-User", "user id"), ("X-Xypr-Role", "role"), ("X-Xypr-Tenant", "tenant id"))
            }
        }
    },
)
async def validate(principal: CurrentPrincipal) -> Response:
    """200 with the caller (also as `X-Xypr-User`, `X-Xypr-Role`, `X-Xypr-Tenant` headers), else 401."""
    headers = {"X-Xypr-User": principal.user_id, "X-Xypr-Role": principal.role.value}
    if principal.tenant_id:
        headers["X-Xypr-Tenant"] = principal.tenant_id
    return JSONResponse(PrincipalView.of(principal).model_dump(mode="json"), headers=headers)


@router.get("/info", summary="Who am I", response_model=InfoView)
async def info(request: Request, principal: CurrentPrincipal, runtime: RuntimeDep) -> InfoView:
    """The caller, their tenant, their session and how they authenticated."""
    tenant: TenantRef | None = None
    if principal.tenant_id:
        async with runtime.database.session() as session:
            name = await session.scalar(select(Tenant.name).where(Tenant.id == principal.tenant_id))
        tenant = TenantRef(id=principal.tenant_id, name=name)
    method = getattr(request.state, "auth_method", "bearer")
    return InfoView(
        user=PrincipalView.of(principal),
        tenant=tenant,
        session_id=principal.session_id,
        authenticated_by="cookie" if method == "cookie" else "bearer",
    )


@router.post(
    "/logout",
    summary="End the session",
    response_model=LogoutView,
    responses=error_responses(400, 401, 403),
    openapi_extra=_form_or_json_body(RefreshRequest, required=False),
)
async def logout(request: Request, runtime: RuntimeDep) -> Response:
    """Revokes the session of the access token, the refresh cookie or the given refresh_token; clears cookies."""
    principal = getattr(request.state, "principal", None)
    fields = await _fields(request)
    family: str | None = getattr(principal, "session_id", None)
    presented = fields.get("refresh_token") or request.cookies.get(REFRESH_COOKIE)
    if presented and request.cookies.get(REFRESH_COOKIE) == presented:
        _require_csrf(request)
    if family is None and isinstance(presented, str) and presented:
        async with runtime.database.session() as session:
            family = await session.scalar(
                select(RefreshToken.family_id).where(RefreshToken.token_hash == refresh_token_hash(presented))
            )
    if family is None:
        raise Unauthorized("no session to end: send an access token, the refresh cookie or a refresh_token")
    await revoke_session(runtime.database, runtime.cache, family, access_ttl=runtime.settings.access_token_ttl_seconds)
    log.info("auth.logout", session_id=family)
    response = JSONResponse(LogoutView(logged_out=True).model_dump())
    clear_session_cookies(response, runtime.settings)
    return response


@router.get(
    "/genesys/login",
    summary="Start a Genesys Cloud login (authorization code + PKCE)",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To Genesys's sign-in page"}, **error_responses(400, 503)},
)
async def genesys_login(
    runtime: RuntimeDep,
    region: Annotated[
        Literal[tuple(sorted(GENESYS_REGIONS))] | None,  # type: ignore[valid-type]
        Query(description="The user's Genesys Cloud domain (default: the configured login host)"),
    ] = None,
    next: Annotated[str, Query(pattern=r"^/([^/\\][^\\]*)?$", max_length=2000)] = "/",
) -> Response:
    """Redirects to Genesys `/oauth/authorize`; Genesys sends the browser back to `/auth/genesys/callback`."""
    settings = runtime.settings
    if not settings.genesys_login_client_id:
        raise ServiceUnavailable("Genesys login is not configured (XYPR_GENESYS_LOGIN_CLIENT_ID)")
    if not next.startswith("/") or next.startswith("//") or "\\" in next:
        raise BadRequest("next: must be a path of this site, like /admin", field="next")
    login, _ = _genesys_hosts(runtime, region)
    pkce = new_pkce()
    state = secrets.token_urlsafe(32)
    record = {"verifier": pkce.verifier, "region": region, "next": next}
    await runtime.cache.set(f"auth:login-state:{state}", orjson.dumps(record), ttl=LOGIN_STATE_TTL_SECONDS)
    target = authorize_url(
        login, client_id=settings.genesys_login_client_id, redirect_uri=_callback_url(runtime),
        state=state, challenge=pkce.challenge,
    )  # fmt: skip
    response = RedirectResponse(target, status_code=302)
    # Binds the login to this browser: a callback carrying someone else's state is refused (login CSRF).
    response.set_cookie(
        LOGIN_STATE_COOKIE, state, max_age=LOGIN_STATE_TTL_SECONDS, path="/auth/genesys", httponly=True,
        secure=settings.secure_cookies, samesite="lax",
    )  # fmt: skip
    return response


def _callback_url(runtime: Runtime) -> str:
    return runtime.settings.public_url.rstrip("/") + CALLBACK_PATH


@router.get(
    CALLBACK_PATH.removeprefix("/auth"),
    summary="Genesys Cloud login callback",
    status_code=303,
    response_class=RedirectResponse,
    responses={303: {"description": "To `next`, with the session cookies"}, **error_responses(401, 403, 503)},
)
async def genesys_callback(
    request: Request,
    runtime: RuntimeDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    """Checks the state, trades the code (with the PKCE verifier), finds the tenant and role, opens the session."""
    if error:
        raise Unauthorized(f"Genesys login failed: {error_description or error}")
    if not code or not state:
        # A callback without Genesys's answer is a login that did not complete, not a malformed request.
        raise Unauthorized("the Genesys login did not complete (no code or state); start again")
    if not secrets.compare_digest(request.cookies.get(LOGIN_STATE_COOKIE, "").encode(), state.encode()):
        raise Forbidden("this login was not started in this browser (state does not match); start again")
    key = f"auth:login-state:{state}"
    stored = await runtime.cache.get(key)
    if stored is None:
        raise Unauthorized("this login has expired or was already used; start again")
    await runtime.cache.delete(key)  # single use
    record = orjson.loads(stored)
    login, api = _genesys_hosts(runtime, record.get("region"))
    genesys_token = await GenesysLogin(runtime.http).exchange_code(
        login, client_id=runtime.settings.genesys_login_client_id, code=code, verifier=record["verifier"],
        redirect_uri=_callback_url(runtime),
    )  # fmt: skip
    tokens = await _genesys_session(runtime, api, genesys_token)
    response = RedirectResponse(str(record.get("next") or "/"), status_code=303)
    response.delete_cookie(LOGIN_STATE_COOKIE, path="/auth/genesys")
    return _session_response(runtime, tokens, response)
