"""The API documentation page, `/docs` (Swagger UI), from assets packaged with the project.

FastAPI's own page loads Swagger UI from a CDN, so it is blank offline; the app is built with
`docs_url=None` and this takes its place. The assets come from the `fastapi-offline` package, pinned to
one version in pyproject.toml: it carries Swagger UI 5, which reads the OpenAPI 3.1 document FastAPI
writes (the `swagger-ui-bundle` package stops at Swagger UI 4, which refuses it). There is no `/redoc`:
the packaged ReDoc fails on this document ("Invalid reference token"), and one reference page is enough.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS_DIR", "DOCS_ASSETS_PREFIX", "DOCS_URL", "install_api_docs"]

DOCS_URL = "/docs"
# Under `/static/`, which the gateway already serves without a token.
DOCS_ASSETS_PREFIX = "/static/apidocs"
DOCS_ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))


def install_api_docs(app: FastAPI) -> None:
    """Serve `/docs` and its OAuth2 redirect page from packaged assets; call before mounting `/static`."""
    app.mount(DOCS_ASSETS_PREFIX, StaticFiles(directory=DOCS_ASSETS_DIR), name="apidocs")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect = f"{DOCS_URL}/oauth2-redirect"
    favicon = f"{DOCS_ASSETS_PREFIX}/favicon.png"

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url=oauth2_redirect,
            # Swagger UI would otherwise send the document to validator.swagger.io from a public host.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
