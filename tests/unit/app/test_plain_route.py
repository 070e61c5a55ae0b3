"""The webhook POSTs go to a plain Starlette route ahead of FastAPI's routing, documented as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, NoMatchFound

from tests.conftest import embedded_settings
from xypr.app import AppPlan, create_app
from xypr.services.deps import MAX_JSON_DEPTH, body_too_deep, json_too_deep
from xypr.services.plain_route import PlainPost
from xypr.services.registry import HTTP_SERVICES


async def _echo(request: Request) -> Response:
    return JSONResponse({"path": request.url.path, "body": (await request.body()).decode()})


def _scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": [], "query_string": b""}


@pytest.mark.parametrize(
    ("method", "path", "root_path", "match"),
    [
        ("POST", "/webhook/x", "", Match.FULL),
        ("POST", "/api/webhook/x", "/api", Match.FULL),
        ("GET", "/webhook/x", "", Match.NONE),  # other methods are the FastAPI route's (and its 405)
        ("PUT", "/webhook/x", "", Match.NONE),
        ("POST", "/webhook/x/", "", Match.NONE),
        ("POST", "/webhook/xy", "", Match.NONE),
    ],
)
def test_a_plain_post_takes_only_a_post_of_its_path(method: str, path: str, root_path: str, match: Match) -> None:
    found, child = PlainPost("/webhook/x", _echo).matches(_scope(method, path, root_path))
    assert found == match
    if match == Match.FULL:
        assert child == {"endpoint": _echo, "path_params": {}}


def test_a_plain_post_runs_its_endpoint_on_the_request() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"hello", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(PlainPost("/webhook/x", _echo).handle(_scope("POST", "/webhook/x"), receive, send))
    assert sent[0]["status"] == 200
    assert orjson.loads(sent[1]["body"]) == {"path": "/webhook/x", "body": "hello"}
    with pytest.raises(NoMatchFound):
        PlainPost("/webhook/x", _echo).url_path_for("_echo")


def test_the_webhook_posts_are_first_in_line_and_still_documented(tmp_path: Path) -> None:
    app = create_app(embedded_settings(tmp_path), AppPlan(http_services=HTTP_SERVICES))
    first = app.router.routes[:2]
    assert [(type(route), getattr(route, "path", None)) for route in first] == [
        (PlainPost, "/webhook/whatsapp"),
        (PlainPost, "/webhook/genesys"),
    ]
    paths = app.openapi()["paths"]
    assert paths["/webhook/whatsapp"]["post"]["operationId"] == "receive_webhook_whatsapp_post"
    assert set(paths["/webhook/whatsapp"]) == {"get", "post"}
    assert paths["/webhook/genesys"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GenesysWebhook"
    }


def test_no_plain_route_for_a_webhook_served_by_another_process(tmp_path: Path) -> None:
    app = create_app(embedded_settings(tmp_path), AppPlan(http_services=("auth",)))
    assert not any(isinstance(route, PlainPost) for route in app.router.routes)


def _nested(depth: int) -> Any:
    document: Any = "leaf"
    for level in range(depth - 1):
        document = [document] if level % 2 else {"k": document}
    return document


@pytest.mark.parametrize("depth", [1, 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 200])
def test_the_bracket_count_shortcut_decides_depth_as_the_walk_does(depth: int) -> None:
    document = _nested(depth + 1)  # `depth` containers around a string
    raw = orjson.dumps(document)
    assert body_too_deep(raw, document) is json_too_deep(document) is (depth > MAX_JSON_DEPTH)


def test_brackets_inside_strings_only_make_the_shortcut_walk() -> None:
    document = {"text": "[{" * 100, "nested": _nested(MAX_JSON_DEPTH + 2)}
    assert body_too_deep(orjson.dumps(document), document)
    shallow = {"text": "[{" * 100}
    assert not body_too_deep(orjson.dumps(shallow), shallow)
