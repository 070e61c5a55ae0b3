"""The OpenAPI document: the JSON error body every API answers, the usual error responses, and what the
gateway adds to every operation (authentication, rate limits, body limits) — so `/openapi.json`
describes exactly what the API accepts and answers (checked by schemathesis in the test suite)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from xypr.core.apimodel import ApiModel
from xypr.services.gateway.paths import PathKind, PathRules

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "component_schema",
    "error_responses",
    "install_openapi",
    "json_error_responses",
    "model_schema",
]

# Schemas of bodies that routes read themselves (signed webhooks, form-or-JSON auth bodies), by name.
_COMPONENTS: dict[str, dict[str, Any]] = {}
_MODELS: list[type[BaseModel]] = []


class ErrorDetail(ApiModel):
    """What went wrong: a stable code, a message for people, the offending field when there is one."""

    code: str
    message: str
    field: str | None = None


class ErrorBody(ApiModel):
    """Every 4xx/5xx answer of the API."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": {"code": "not_found", "message": "no tenant 0b6f3c1e-…"}}]}
    )

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Invalid request (the message names the field)",
    401: "No valid credentials (bearer token or session cookie)",
    403: "The caller's role may not do this",
    404: "Not found in the caller's tenant (other tenants' data is never visible)",
    409: "Conflicts with the current state (e.g. an identifier another tenant owns)",
    413: "Body too large",
    415: "A media type the operation does not take",
    429: "Too many requests; retry after `Retry-After` seconds",
    502: "Genesys or Meta refused or failed (the message says what it answered)",
    503: "A dependency is unavailable; retry later",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
_BODY_METHODS = frozenset({"post", "put", "patch"})


def error_responses(
    *codes: int, also: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these error statuses with the common error body (plus `also`)."""
    documented: dict[int | str, dict[str, Any]] = dict(also or {})
    documented.update({code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes})
    return documented


def json_error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Like `error_responses`, for a route whose success is not JSON (HTML, event stream): errors still are."""
    documented = error_responses(*codes)
    for entry in documented.values():
        entry["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return documented


def component_schema(name: str, schema: dict[str, Any]) -> dict[str, str]:
    """Register a hand-written schema under `#/components/schemas/{name}`; returns a `$ref` to it."""
    _COMPONENTS[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def model_schema(model: type[BaseModel]) -> dict[str, str]:
    """Register a model's (validation) schema among the components; returns a `$ref` to it."""
    if model not in _MODELS:
        _MODELS.append(model)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _error(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if status == 429:
        response["headers"] = _RETRY_AFTER
    return response


def _complete(operation: dict[str, Any], method: str, kind: PathKind, *, limits: bool, protected: bool) -> None:
    """Add what the app and the gateway may answer for this operation, beyond what its route declares."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    validation = responses.pop("422", None)
    # FastAPI documents its validation errors as 422; Xypr answers them 400 with the common error body.
    if validation is not None and "HTTPValidationError" in str(validation):
        responses.setdefault("400", _error(400))
    elif validation is not None:
        responses["422"] = validation
    if operation.get("parameters") or "requestBody" in operation:
        responses.setdefault("400", _error(400))
    if kind is PathKind.PROBE:
        return
    if limits:
        responses.setdefault("429", _error(429))
        if method in _BODY_METHODS and kind is not PathKind.WEBHOOK:
            responses.setdefault("413", _error(413))
    if protected:
        responses.setdefault("401", _error(401))
        operation["security"] = [{"bearer": []}, {"session": []}]
        if method not in ("get", "head", "options"):
            # A cookie session's unsafe request must repeat the CSRF token (the gateway answers 403 otherwise).
            responses.setdefault("403", _error(403, "The caller's role may not do this, or a missing CSRF token"))


def install_openapi(app: FastAPI, rules: PathRules, *, limits: bool) -> None:
    """Make `app.openapi()` document the gateway's answers, the security schemes and 400 for bad input."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
        )
        for path, item in document.get("paths", {}).items():
            kind = rules.kind(path)
            for method, operation in item.items():
                _complete(operation, method, kind, limits=limits, protected=kind is PathKind.PROTECTED)
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        models: list[type[BaseModel]] = [ErrorBody, *_MODELS]
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas.setdefault(model.__name__, schema)
        for name, schema in _COMPONENTS.items():
            schemas.setdefault(name, schema)
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                       "description": "An access token from POST /auth/token"},
            "session": {"type": "apiKey", "in": "cookie", "name": "xypr_access",
                        "description": "A browser session from POST /auth/login or the Genesys login"},
        }  # fmt: skip
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
