"""`xypr.state` is the only code that writes conversations, messages, statuses and media rows: the
workers and routes call its functions. A scan of the source keeps it so."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import xypr
from xypr.state.models import Conversation, Media, Message, MessageStatus

SOURCE = Path(xypr.__file__).parent
# The state layer itself; the sandbox (emulators) and auth (its own tables) are not the bridge's rows.
EXEMPT = ("state/", "sandbox/", "auth/", "backends/db/migrations/")
ROWS = {model.__name__ for model in (Conversation, Message, MessageStatus, Media)}
# Columns of the state tables; the ones every table has say nothing about which table is written.
COLUMNS = {column.name for model in (Conversation, Message) for column in model.__table__.columns} - {
    "id",
    "tenant_id",
    "created_at",
    "updated_at",
}
# Assignments to attributes of that name on objects that are not rows.
NOT_ROWS = {
    ("services/agent_widget/history.py", "bubble.text"),
    ("services/admin_dashboard/people.py", "user.status"),  # a user account (auth's table)
}
# `setattr` with a computed name on objects that are not state rows (tenant settings).
NOT_ROWS_SETATTR = {("tenants/service.py", "tenant"), ("services/tenant/lifecycle.py", "stored")}


def _writes(relative: str, tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for each in target.elts if isinstance(target, ast.Tuple) else [target]:
                if (
                    isinstance(each, ast.Attribute)
                    and each.attr in COLUMNS
                    and not (isinstance(each.value, ast.Name) and each.value.id == "self")  # an object's own
                    and (relative, ast.unparse(each)) not in NOT_ROWS
                ):
                    yield f"{relative}:{node.lineno}: assigns {ast.unparse(each)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            owner, attribute = (ast.unparse(node.args[0]), node.args[1]) if len(node.args) > 1 else ("", None)
            if isinstance(attribute, ast.Constant):
                if attribute.value in COLUMNS and owner != "self":
                    yield f"{relative}:{node.lineno}: sets {owner}.{attribute.value}"
            elif (relative, owner) not in NOT_ROWS_SETATTR:
                yield f"{relative}:{node.lineno}: sets a computed attribute of {owner}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in ROWS:
                yield f"{relative}:{node.lineno}: constructs a {name} row"
            first = node.args[0] if node.args else None
            if name in ("insert", "update", "delete") and isinstance(first, ast.Name) and first.id in ROWS:
                yield f"{relative}:{node.lineno}: {name}({first.id})"


def _offences() -> list[str]:
    found: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if not relative.startswith(EXEMPT):
            found.extend(_writes(relative, ast.parse(path.read_text(encoding="utf-8"))))
    return found


def test_only_the_state_layer_writes_conversations_messages_statuses_and_media() -> None:
    assert _offences() == []


def test_the_scan_finds_the_writes_it_forbids() -> None:
    offending = """
async def handler(session, row, conversation):
    row.status = "failed"
    row.status, row.error = "failed", "why"
    row.details = {}
    conversation.wa_id += "1"
    session.add(Message(tenant_id="t"))
    await session.execute(update(Conversation).values(bsuid=None))
    setattr(conversation, "bsuid", None)
    for field in ("bsuid", "customer_name"):
        setattr(conversation, field, None)
"""

    found = list(_writes("services/example.py", ast.parse(offending)))

    assert sorted(found) == sorted(
        [
            "services/example.py:3: assigns row.status",
            "services/example.py:4: assigns row.status",
            "services/example.py:4: assigns row.error",
            "services/example.py:5: assigns row.details",
            "services/example.py:6: assigns conversation.wa_id",
            "services/example.py:7: constructs a Message row",
            "services/example.py:8: update(Conversation)",
            "services/example.py:9: sets conversation.bsuid",
            "services/example.py:11: sets a computed attribute of conversation",
        ]
    )
