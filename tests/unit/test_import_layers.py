"""Imports point one way: each part of `xypr` imports only its own layer and the layers below it.

core → backends → whatsapp / genesys (wire models and clients) → transform (pure) → state / tenants (and
auth, audit, the stage runner) → the runtime that opens them for a process → the operators' parts
(dead letters, monitoring) → services → what assembles them (app, layout, sandbox, cli). A scan of every
import, at module level or inside a function, keeps it so."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import xypr

SOURCE = Path(xypr.__file__).parent
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core", "config", "topology", "web"}),
    frozenset({"backends", "worker_processes"}),
    frozenset({"whatsapp", "genesys", "events"}),
    frozenset({"transform"}),
    frozenset({"state", "tenants", "auth", "audit", "retry_parking", "stage"}),
    frozenset({"runtime"}),  # opens the backends, the clients and the tenant directory for a process
    frozenset({"deadletters", "monitoring"}),  # what operators do and see, through a Runtime
    frozenset({"services"}),
    frozenset({"app", "layout", "sandbox", "cli"}),
)
# transform is pure: no HTTP client, no database, no clock of its own.
PURE = {"transform": ("httpx", "aiohttp", "sqlalchemy", "asyncpg", "aiosqlite", "redis", "aio_pika")}


def _layer(part: str) -> int:
    for index, parts in enumerate(LAYERS):
        if part in parts:
            return index
    raise AssertionError(f"xypr.{part} is in no layer: add it to LAYERS")


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _offences(relative: str, tree: ast.AST) -> Iterator[str]:
    part = relative.split("/")[0].removesuffix(".py")
    for line, module in _imports(tree):
        names = module.split(".")
        if names[0] == "xypr" and len(names) > 1 and _layer(names[1]) > _layer(part):
            yield f"{relative}:{line}: xypr.{part} imports {module}, a layer above it"
        if names[0] in PURE.get(part, ()):
            yield f"{relative}:{line}: xypr.{part} is pure but imports {module}"


def _scan() -> list[str]:
    found: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if relative != "__init__.py":
            found.extend(_offences(relative, ast.parse(path.read_text(encoding="utf-8"))))
    return found


def test_every_import_points_to_the_same_layer_or_one_below() -> None:
    assert _scan() == []


@pytest.mark.parametrize(
    ("relative", "source", "offence"),
    [
        (
            "backends/db/migrations/env.py",
            "from xypr.state.models import Message",
            "imports xypr.state.models, a layer",
        ),
        ("runtime.py", "def f():\n    import xypr.services.registry", "imports xypr.services.registry, a layer"),
        ("tenants/lifecycle.py", "from xypr.runtime import Runtime", "imports xypr.runtime, a layer above"),
        ("transform/inbound.py", "import httpx", "is pure but imports httpx"),
        ("genesys/client.py", "from xypr.state.models import Message", "imports xypr.state.models, a layer above"),
    ],
)
def test_the_scan_finds_an_import_that_runs_back_up(relative: str, source: str, offence: str) -> None:
    (found,) = _offences(relative, ast.parse(source))

    assert offence in found


def test_every_part_of_xypr_is_in_a_layer() -> None:
    parts = {path.name.removesuffix(".py") for path in SOURCE.iterdir() if path.suffix == ".py" or path.is_dir()}
    parts -= {"__init__", "__pycache__"}

    assert parts == set().union(*LAYERS)
